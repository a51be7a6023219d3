"""Both embedders on real generated speech: Resemblyzer's shipped weights, and a tiny
randomly initialised WavLM saved with save_pretrained (standing in for the checkpoint)."""

import numpy as np
import pytest

from conftest import espeak_wav
from wakeprep.audio import AudioSettings, convert_file
from wakeprep.embed import EmbedderLoadError, ResemblyzerEmbedder, WavLMEmbedder, embed_store, load_embedder
from wakeprep.store import RaggedStore, RaggedWriter

VOICES = ["en-us", "en-gb-scotland", "en-029"]
SPEEDS = [140, 170, 200]
PHRASE = "hey jarvis, turn on the kitchen light"


@pytest.fixture(scope="module")
def speech(tmp_path_factory, have_espeak):
    root = tmp_path_factory.mktemp("speech")
    clips = {}
    for v in VOICES:
        for i, speed in enumerate(SPEEDS):
            res = convert_file(str(espeak_wav(root / f"{v}_{i}.wav", PHRASE, voice=v, speed=speed)), AudioSettings())
            clips[(v, i)] = res.samples
    return clips


@pytest.fixture(scope="module")
def tiny_wavlm(tmp_path_factory):
    import torch
    from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMForXVector

    torch.manual_seed(0)
    cfg = WavLMConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32, 32, 32), conv_stride=(5, 4, 4), conv_kernel=(10, 8, 4), feat_extract_norm="layer",
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, tdnn_dim=(32, 32, 64),
        tdnn_kernel=(3, 3, 1), tdnn_dilation=(1, 2, 1), xvector_output_dim=24, num_buckets=32, max_bucket_distance=64,
    )
    folder = tmp_path_factory.mktemp("tiny-wavlm")
    WavLMForXVector(cfg).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(folder)
    return str(folder)


def _check_rows(e):
    assert e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)


def test_resemblyzer_embeds_real_speech(speech):
    enc = ResemblyzerEmbedder()
    keys = sorted(speech)
    e = enc.embed([speech[k] for k in keys])
    assert e.shape == (len(keys), 256)
    _check_rows(e)
    # same input, same embedding, byte for byte
    assert enc.embed([speech[k] for k in keys]).tobytes() == e.tobytes()
    # a batch gives what clip-by-clip gives, up to float rounding
    single = np.concatenate([enc.embed([speech[k]]) for k in keys])
    np.testing.assert_allclose(single, e, atol=1e-5)
    # the same voice (at other speeds) is more alike than other voices saying the same words
    sim = e @ e.T
    voice = np.array([k[0] for k in keys])
    same = sim[(voice[:, None] == voice[None, :]) & ~np.eye(len(keys), dtype=bool)].mean()
    diff = sim[voice[:, None] != voice[None, :]].mean()
    assert same > diff + 0.05, (same, diff)


def test_wavlm_loads_local_folder_and_pads_with_mask(speech, tiny_wavlm):
    enc = load_embedder("wavlm", tiny_wavlm)
    assert isinstance(enc, WavLMEmbedder) and enc.dim == 24
    long, short = speech[("en-us", 0)], speech[("en-029", 2)]
    assert len(short) < len(long)
    batch = enc.embed([short, long])
    _check_rows(batch)
    assert batch.shape == (2, 24)
    assert enc.embed([short, long]).tobytes() == batch.tobytes()
    alone = enc.embed([short])
    # the attention mask keeps the padding out of the short clip's embedding: what is
    # left is the convolutions' view across the clip's end (measured 1.6e-3), against
    # 0.13 when the same padded batch goes in without the mask
    np.testing.assert_allclose(alone[0], batch[0], atol=5e-3)
    import torch

    waves = [c.astype(np.float32) / 32768 for c in (short, long)]
    inputs = enc.extractor(waves, sampling_rate=16000, padding=True, return_tensors="pt")
    with torch.no_grad():
        unmasked = enc.model(input_values=inputs["input_values"]).embeddings.numpy()[0]
    unmasked /= np.linalg.norm(unmasked)
    assert np.abs(unmasked - alone[0]).max() > 10 * np.abs(batch[0] - alone[0]).max()


def test_wavlm_load_failure_says_how_to_fix(tmp_path):
    with pytest.raises(EmbedderLoadError) as e:
        WavLMEmbedder(str(tmp_path / "no-such-model"))
    msg = str(e.value)
    assert "embedder 'wavlm'" in msg and "no-such-model" in msg
    assert "local folder" in msg and "resemblyzer" in msg
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmbedderLoadError, match="embed.model"):
        WavLMEmbedder(str(tmp_path / "empty"))


def test_embed_store(tmp_path, speech):
    keys = sorted(speech)
    with RaggedWriter(tmp_path / "audio", np.int16, attrs={"corpus": "c", "label": "positive"}) as w:
        for k in keys:
            w.append(f"c/{k[0]}/{k[1]}", speech[k])
    enc = ResemblyzerEmbedder()
    embed_store(tmp_path / "audio", tmp_path / "emb", enc, batch_size=4, threads=1)
    s = RaggedStore(tmp_path / "emb")
    assert s.ids == RaggedStore(tmp_path / "audio").ids and s.row_shape == (256,)
    assert all(len(x) == 1 for x in s)
    np.testing.assert_allclose(np.asarray(s.data), enc.embed([speech[k] for k in keys]), atol=1e-5)
    assert s.attrs["embedder"] == "resemblyzer"
