"""Both embedders on real generated speech: Resemblyzer's shipped weights, and a tiny
randomly initialised WavLM saved with save_pretrained (standing in for the checkpoint)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from helpers import REPO, espeak_wav
from wakeprep.audio import AudioSettings, convert_file
from wakeprep.embed import (
    EmbedderLoadError,
    EmbedSettings,
    ResemblyzerEmbedder,
    WavLMEmbedder,
    embed_shard,
    embed_store,
    hann_window,
    load_embedder,
    mel_basis,
    mel_spectrogram,
)
from wakeprep.store import RaggedStore, RaggedWriter
from wakeprep.table import write_table

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
    # the rule's entry point: the embed section whole, one settings object
    settings = EmbedSettings.from_config({"method": "resemblyzer", "batch_size": 4, "threads": 1})
    assert embed_shard(tmp_path / "audio", tmp_path / "emb2", settings) == len(keys)
    s2 = RaggedStore(tmp_path / "emb2")
    assert s2.ids == s.ids and s2.attrs == s.attrs
    np.testing.assert_array_equal(np.asarray(s2.data), np.asarray(s.data))
    with pytest.raises(ValueError, match=r"^embed\.colour: unknown key"):
        EmbedSettings.from_config({"colour": "red"})


def test_mel_spectrogram_is_librosas_bytes():
    """The NumPy mel spectrogram gives the bytes of Resemblyzer's librosa one."""
    librosa = pytest.importorskip("librosa")
    from scipy.signal import get_window

    audio = pytest.importorskip("resemblyzer.audio")
    assert np.array_equal(hann_window(), get_window("hann", 400, fftbins=True))
    assert mel_basis().tobytes() == librosa.filters.mel(sr=16000, n_fft=400, n_mels=40).tobytes()
    rng = np.random.default_rng(1)
    for n in (100, 399, 400, 401, 1600, 16000, 25599, 25600, 48000, 160000):
        wav = (rng.normal(size=n) * 0.1).astype(np.float32)
        with _quiet():
            ref = audio.wav_to_mel_spectrogram(wav)
        got = mel_spectrogram(wav)
        assert got.dtype == ref.dtype and got.shape == ref.shape and got.tobytes() == ref.tobytes(), n


class _quiet:
    """Silence librosa's 'n_fft too large' warning for the shortest inputs."""

    def __enter__(self):
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore")

    def __exit__(self, *exc):
        return self._w.__exit__(*exc)


def test_embeddings_are_resemblyzers(speech):
    """Partials, network outputs and embeddings equal Resemblyzer's own, byte for byte,
    for quiet clips (raised to -30 dBFS) and loud ones, short and long."""
    import torch

    resemblyzer = pytest.importorskip("resemblyzer")
    from resemblyzer import audio
    from resemblyzer.hparams import audio_norm_target_dBFS

    ref = resemblyzer.VoiceEncoder(device="cpu", verbose=False).eval()
    enc = ResemblyzerEmbedder()
    long = np.concatenate([speech[k] for k in sorted(speech)[:4]])
    for clip in (speech[("en-us", 0)], (speech[("en-us", 0)] // 64), long, long[:3000]):
        wav = audio.normalize_volume(clip.astype(np.float32) / 32768.0, audio_norm_target_dBFS, increase_only=True)
        wav_slices, mel_slices = ref.compute_partial_slices(len(wav), rate=1.3, min_coverage=0.75)
        if wav_slices[-1].stop > len(wav):
            wav = np.pad(wav, (0, wav_slices[-1].stop - len(wav)))
        mel = audio.wav_to_mel_spectrogram(wav)
        want = np.stack([mel[s] for s in mel_slices])
        got = enc.partials(clip)
        assert got.tobytes() == want.tobytes()
        with torch.no_grad():
            partial_emb = ref(torch.from_numpy(want)).numpy()
            assert enc.model(torch.from_numpy(got)).numpy().tobytes() == partial_emb.tobytes()
        # embed_utterance's average of the partials (the norm's rounding may differ by an ulp)
        mean = partial_emb.mean(axis=0)
        np.testing.assert_allclose(enc.embed([clip])[0], mean / np.linalg.norm(mean), rtol=0, atol=1e-7)


def test_embedder_starts_without_librosa_or_jit():
    """A new process loads the embedder and embeds its first clip without importing
    librosa, numba or resemblyzer; the first call costs what later ones do (it was
    3.4 s of numba compilation)."""
    code = """
import json, sys, time
import numpy as np
import torch
from wakeprep.embed import load_embedder
e = load_embedder("resemblyzer")
torch.set_num_threads(1)  # as embed_store does with embed.threads
x = (np.random.default_rng(0).normal(size=24000) * 3000).astype(np.int16)
t0 = time.perf_counter(); e.embed([x]); t1 = time.perf_counter(); e.embed([x]); t2 = time.perf_counter()
print(json.dumps({"first": t1 - t0, "second": t2 - t1,
                  "heavy": sorted(m for m in ("librosa", "numba", "resemblyzer", "webrtcvad") if m in sys.modules)}))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["heavy"] == []
    assert got["first"] < 1.0, got


def _store_with_table(tmp_path, speech, spans, vad="silero"):
    """An audio store of the speech clips and its clip table with the given speech spans."""
    keys = sorted(speech)
    rows = []
    with RaggedWriter(tmp_path / "audio", np.int16, attrs={"corpus": "c", "label": "negative", "vad": vad}) as w:
        for k in keys:
            cid = f"c/{k[0]}/{k[1]}"
            w.append(cid, speech[k])
            start, end = spans.get(k, (None, None))
            rows.append({"clip_id": cid, "corpus": "c", "label": "negative", "status": "ok",
                         "speech_start_s": start, "speech_end_s": end})
    write_table(tmp_path / "clips.tsv", rows)
    return keys


def test_embed_store_skips_clips_without_speech_and_trims(tmp_path, speech):
    keys = sorted(speech)
    quiet = keys[1], keys[4]  # no speech found in these
    spans = {k: (0.25, round(len(speech[k]) / 16000 - 0.3, 2)) for k in keys if k not in quiet}
    _store_with_table(tmp_path, speech, spans)
    enc = ResemblyzerEmbedder()
    n = embed_store(tmp_path / "audio", tmp_path / "emb", enc, batch_size=4, threads=1, table=tmp_path / "clips.tsv")
    s = RaggedStore(tmp_path / "emb")
    kept = [k for k in keys if k not in quiet]
    assert n == len(kept) and s.ids == [f"c/{k[0]}/{k[1]}" for k in kept]
    assert s.attrs["span"] == "speech" and s.attrs["skipped_no_speech"] == 2
    trimmed = [speech[k][int(spans[k][0] * 16000): int(round(spans[k][1] * 16000))] for k in kept]
    np.testing.assert_allclose(np.asarray(s.data), enc.embed(trimmed), atol=1e-5)

    embed_store(tmp_path / "audio", tmp_path / "whole", enc, batch_size=4, threads=1,
                table=tmp_path / "clips.tsv", trim=False)
    whole = RaggedStore(tmp_path / "whole")
    assert whole.ids == s.ids and whole.attrs["span"] == "clip"
    np.testing.assert_allclose(np.asarray(whole.data), enc.embed([speech[k] for k in kept]), atol=1e-5)

    # byte-identical reruns
    embed_store(tmp_path / "audio", tmp_path / "again", enc, batch_size=4, threads=1, table=tmp_path / "clips.tsv")
    assert (tmp_path / "again" / "data.bin").read_bytes() == (tmp_path / "emb" / "data.bin").read_bytes()


def test_embed_store_without_speech_detection_embeds_every_clip(tmp_path, speech):
    """A store whose label had no speech detection (``vad`` attribute empty) is embedded whole."""
    keys = _store_with_table(tmp_path, speech, {}, vad="")
    n = embed_store(tmp_path / "audio", tmp_path / "emb", ResemblyzerEmbedder(), table=tmp_path / "clips.tsv")
    assert n == len(keys) and RaggedStore(tmp_path / "emb").attrs["span"] == "clip"


def test_embed_store_of_only_non_speech_is_empty(tmp_path, speech):
    _store_with_table(tmp_path, speech, {})
    assert embed_store(tmp_path / "audio", tmp_path / "emb", ResemblyzerEmbedder(), table=tmp_path / "clips.tsv") == 0
    s = RaggedStore(tmp_path / "emb")
    assert len(s) == 0 and s.row_shape == (256,)


def test_embed_store_bytes_do_not_depend_on_blas_threads(tmp_path, speech):
    """The mel spectrogram's BLAS product rounds differently on 1 and 2 BLAS threads;
    embed_store holds BLAS to one, so the environment does not change the bytes."""
    long = np.concatenate([speech[k] for k in sorted(speech)] * 4)
    with RaggedWriter(tmp_path / "audio", np.int16, attrs={"corpus": "c", "label": "negative"}) as w:
        w.append("c/long", long)
    code = ("import sys; from wakeprep.embed import embed_store, load_embedder; "
            "embed_store(sys.argv[1], sys.argv[2], load_embedder('resemblyzer'), threads=1)")
    out = {}
    for t in ("1", "2"):
        env = {**os.environ, "PYTHONPATH": str(REPO), "OPENBLAS_NUM_THREADS": t, "OMP_NUM_THREADS": t}
        subprocess.run([sys.executable, "-c", code, str(tmp_path / "audio"), str(tmp_path / f"e{t}")],
                       env=env, check=True, capture_output=True)
        out[t] = (tmp_path / f"e{t}" / "data.bin").read_bytes()
    assert out["1"] == out["2"]
