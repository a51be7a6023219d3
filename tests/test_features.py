import numpy as np
import pytest
from pymicro_features import MicroFrontend

from conftest import espeak_wav
from wakeprep.audio import AudioSettings, convert_file
from wakeprep.features import FEATURE_SCALE, dequantise, micro_features, micro_features_u16, quantise
from wakeprep.shards import features_shard
from wakeprep.store import RaggedStore, RaggedWriter


def direct_frontend(samples: np.ndarray) -> np.ndarray:
    """pymicro-features fed 10 ms at a time, written here independently of the package."""
    data = samples.astype("<i2").tobytes()
    fe = MicroFrontend()
    out, i = [], 0
    while i + 320 <= len(data):
        r = fe.process_samples(data[i : i + 320])
        i += r.samples_read * 2
        if r.features:
            out.append(r.features)
    return np.array(out, dtype=np.float32)


@pytest.fixture(scope="module")
def speech(tmp_path_factory, have_espeak):
    p = espeak_wav(tmp_path_factory.mktemp("f") / "s.wav", "hey jarvis, turn on the lights")
    res = convert_file(str(p), AudioSettings())
    assert res.status == "ok"
    return res.samples


def test_equal_to_pymicro_features_directly(speech):
    ours = micro_features(speech)
    ref = direct_frontend(speech)
    assert ours.shape == ref.shape and ours.shape[1] == 40
    np.testing.assert_array_equal(ours, ref)
    # uint16 storage is lossless
    codes = micro_features_u16(speech)
    assert codes.dtype == np.uint16
    np.testing.assert_array_equal(dequantise(codes), ref)
    np.testing.assert_array_equal(codes.astype(np.float64), ref.astype(np.float64) * FEATURE_SCALE)


def test_one_second_gives_98_frames():
    x = (np.random.default_rng(0).standard_normal(16000) * 3000).astype(np.int16)
    assert micro_features(x).shape == (98, 40)
    assert micro_features(x[:100]).shape == (0, 40)


def test_quantise_range_checked():
    with pytest.raises(ValueError):
        quantise(np.array([[-1.0]]))


def test_features_shard_matches_direct(tmp_path, speech):
    with RaggedWriter(tmp_path / "audio", np.int16, attrs={"corpus": "c", "label": "positive"}) as w:
        w.append("c/a", speech)
        w.append("c/b", speech[: len(speech) // 3])
    features_shard(tmp_path / "audio", tmp_path / "feat")
    s = RaggedStore(tmp_path / "feat")
    assert s.row_shape == (40,) and s.dtype == np.uint16 and s.ids == ["c/a", "c/b"]
    np.testing.assert_array_equal(dequantise(s["c/a"]), direct_frontend(speech))
    np.testing.assert_array_equal(dequantise(s["c/b"]), direct_frontend(speech[: len(speech) // 3]))
    features_shard(tmp_path / "audio", tmp_path / "feat_pad", pad_ms=100)
    padded = RaggedStore(tmp_path / "feat_pad")
    assert len(padded["c/a"]) == len(s["c/a"]) + 20
