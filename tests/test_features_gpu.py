"""The CUDA frontend (wakeprep/frontend/microfrontend.cu) against pymicro-features.

Marked ``gpu``: needs CuPy and a usable CUDA device, skips cleanly without them. Run on a
GPU machine with ``python3 -m pytest -q -m gpu tests/test_features_gpu.py``.
"""

import numpy as np
import pytest

from test_features import batch, direct_frontend, signals
from wakeprep.augment import gpu_status
from wakeprep.features import FeatureSettings, features_batch, frame_count, micro_features_u16, quantise, reference_u16
from wakeprep.shards import features_shard
from wakeprep.store import RaggedStore, RaggedWriter

GPU_OK, GPU_WHY = gpu_status()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not GPU_OK, reason=f"no usable GPU: {GPU_WHY}")]


def test_gpu_equals_pymicro_features_on_a_million_frames():
    """Over a million frames of noise, tones, sweeps, silence, DC, clipping and extremes:
    every code and every frame count equal to pymicro-features'."""
    clips = signals(seed=11, seconds=10_800)
    x, offsets = batch(clips)
    codes, frame_offsets = features_batch(x, offsets, device="cuda")
    assert frame_offsets[-1] >= 1_000_000
    for i, clip in enumerate(clips):
        ref = reference_u16(clip)
        got = codes[frame_offsets[i] : frame_offsets[i + 1]]
        assert got.shape == ref.shape, f"clip {i}: {len(clip)} samples"
        if not np.array_equal(got, ref):
            bad = np.argwhere(got != ref)[:5]
            pytest.fail(f"clip {i} ({len(clip)} samples): codes differ at {bad.tolist()}")


@pytest.mark.parametrize("n", [0, 1, 159, 160, 161, 479, 480, 481, 15999, 16000, 16001, 160 * 997])
def test_gpu_boundary_lengths(n):
    x = (np.random.default_rng(n).standard_normal(n) * 2000).astype(np.int16)
    ref = quantise(direct_frontend(x))
    got = micro_features_u16(x, device="cuda")
    assert got.shape == ref.shape == (frame_count(n), 40)
    np.testing.assert_array_equal(got, ref)


def test_gpu_takes_device_arrays():
    import cupy

    from wakeprep.frontend import gpu

    clips = signals(seed=12, seconds=200)
    x, offsets = batch(clips)
    got = gpu.features_batch(cupy.asarray(x), cupy.asarray(offsets))
    assert isinstance(got, cupy.ndarray)
    np.testing.assert_array_equal(got.get(), np.concatenate([reference_u16(c) for c in clips]))


def test_features_shard_cuda(tmp_path):
    """The rule's library call on the GPU, in several batches, padded: the reference's codes."""
    rng = np.random.default_rng(13)
    clips = [(rng.standard_normal(int(rng.integers(0, 40000))) * 3000).astype(np.int16) for _ in range(80)]
    with RaggedWriter(tmp_path / "audio", np.int16, attrs={"corpus": "c", "label": "negative"}) as w:
        for i, c in enumerate(clips):
            w.append(f"c/{i:02d}", c)
    features_shard(tmp_path / "audio", tmp_path / "gpu", FeatureSettings(pad_ms=20, device="cuda", batch_mb=1))
    s = RaggedStore(tmp_path / "gpu")
    assert s.ids == [f"c/{i:02d}" for i in range(80)]
    pad = np.zeros(320, np.int16)
    for i, c in enumerate(clips):
        np.testing.assert_array_equal(s[i], reference_u16(np.concatenate([pad, c, pad])))
