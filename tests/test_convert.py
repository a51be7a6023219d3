"""Conversion of real files written by libsndfile (and sox) in many rates, depths, layouts and formats."""

import shutil
import subprocess

import numpy as np
import pytest

from helpers import tone, write_audio
from wakeprep.audio import AudioSettings, convert_file

SECONDS = 1.25
AMP = 0.5
RMS_EXPECTED = AMP / np.sqrt(2) * 32768
RATES = [8000, 16000, 22050, 44100, 48000]


def _check(res, rate_in, rms_tol=0.02, len_tol=2, gain=1.0):
    assert res.status == "ok", (res.reason, res.detail)
    assert res.samples.dtype == np.int16 and res.samples.ndim == 1
    expected_len = round(SECONDS * 16000)
    assert abs(len(res.samples) - expected_len) <= len_tol, (len(res.samples), expected_len)
    assert res.source_rate == rate_in
    core = res.samples[800:-800].astype(np.float64)  # away from the resampler's edges
    rms = np.sqrt(np.mean(core**2))
    assert rms == pytest.approx(RMS_EXPECTED * gain, rel=rms_tol)
    # the tone's frequency survives: the spectrum peaks at 440 Hz
    spec = np.abs(np.fft.rfft(core * np.hanning(len(core))))
    peak_hz = np.argmax(spec) * 16000 / len(core)
    assert abs(peak_hz - 440) < 5


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("subtype,rms_tol", [("PCM_U8", 0.03), ("PCM_16", 0.005), ("PCM_24", 0.005), ("FLOAT", 0.005)])
def test_wav_rates_and_depths(tmp_path, rate, subtype, rms_tol):
    p = write_audio(tmp_path / "x.wav", tone(SECONDS, rate, amp=AMP), rate, "WAV", subtype)
    res = convert_file(str(p), AudioSettings())
    _check(res, rate, rms_tol)
    assert res.subtype == subtype and res.channels == 1


@pytest.mark.parametrize("channels", [2, 6])
@pytest.mark.parametrize("rate", [22050, 48000])
def test_multichannel_downmix(tmp_path, channels, rate):
    gains = np.linspace(1.0, 0.4, channels)
    p = write_audio(tmp_path / "x.wav", tone(SECONDS, rate, amp=AMP), rate, "WAV", "PCM_16", channels, gains)
    res = convert_file(str(p), AudioSettings())
    assert res.channels == channels
    _check(res, rate, 0.01, gain=float(np.mean(gains)))


@pytest.mark.parametrize(
    "fmt,ext,subtype,rms_tol,len_tol",
    [
        ("FLAC", "flac", "PCM_16", 0.005, 2),
        ("FLAC", "flac", "PCM_24", 0.005, 2),
        ("OGG", "ogg", "VORBIS", 0.05, 2),
        ("MP3", "mp3", "MPEG_LAYER_III", 0.05, 2),
    ],
)
@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_compressed_formats(tmp_path, fmt, ext, subtype, rms_tol, len_tol, rate):
    p = write_audio(tmp_path / f"x.{ext}", tone(SECONDS, rate, amp=AMP), rate, fmt, subtype, channels=2, gains=[1, 1])
    res = convert_file(str(p), AudioSettings())
    assert res.format == fmt and res.channels == 2
    _check(res, rate, rms_tol, len_tol)


def test_16k_int16_mono_is_bit_exact(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.integers(-20000, 20000, 16000).astype(np.int16)
    p = tmp_path / "x.wav"
    import soundfile as sf

    sf.write(p, x, 16000, subtype="PCM_16")
    res = convert_file(str(p), AudioSettings())
    np.testing.assert_array_equal(res.samples, x)


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox not installed")
def test_sox_fallback_for_formats_libsndfile_cannot_read(tmp_path):
    src = write_audio(tmp_path / "x.wav", tone(SECONDS, 44100, amp=AMP), 44100, "WAV", "PCM_16")
    native = tmp_path / "x.sox"  # SoX's own format: libsndfile cannot read it
    subprocess.run(["sox", str(src), str(native)], check=True)
    res = convert_file(str(native), AudioSettings())
    assert res.decoder == "sox"
    _check(res, 44100, 0.005)


def test_float_beyond_full_scale_is_clipped_and_counted(tmp_path):
    p = write_audio(tmp_path / "loud.wav", tone(SECONDS, 16000, amp=2.0), 16000, "WAV", "FLOAT")
    res = convert_file(str(p), AudioSettings())
    assert res.status == "ok" and res.clipped > 0
    assert res.samples.max() == 32767 and res.samples.min() == -32768


@pytest.mark.parametrize("channels", range(1, 11))
def test_downmix_is_numpys_mean_bit_for_bit(channels):
    """The fast downmix (columns added in order) gives the bits of ``x.mean(axis=1,
    dtype=float32)``, which the conversion used before, for every channel count."""
    from wakeprep.audio import downmix

    rng = np.random.default_rng(channels)
    x = (rng.standard_normal((20_000, channels)) * rng.choice([1e-4, 0.3, 1.5], (20_000, channels))).astype(np.float32)
    want = x.mean(axis=1, dtype=np.float32)
    got = downmix(x)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))


def _shard_corpus(root):
    """A small mixed corpus: rates that need resampling, stereo, FLAC, a bad file."""
    from wakeprep.corpus import scan_corpus, write_manifests

    rng = np.random.default_rng(5)
    for k, (rate, fmt, ch) in enumerate([(16000, "WAV", 1), (44100, "WAV", 2), (22050, "FLAC", 1),
                                          (48000, "FLAC", 2), (8000, "WAV", 1), (16000, "FLAC", 2)]):
        x = tone(0.5 + 0.37 * k, rate, freq=200 + 90 * k, amp=0.3) + (rng.standard_normal(round((0.5 + 0.37 * k) * rate)) * 0.01).astype(np.float32)
        write_audio(root / "c" / f"f{k}.{fmt.lower()}", x, rate, fmt, "PCM_16", ch, np.linspace(1, 0.5, ch))
    (root / "c" / "bad.wav").write_text("not audio")
    write_manifests(scan_corpus("c", root / "c"), root / "m", 100)
    return root / "m" / "s0000.jsonl", {"name": "c", "path": str(root / "c"), "label": "negative"}


@pytest.mark.parametrize("pad_ms,batch_mb", [(0, 64), (0, 1), (20, 1)])
def test_features_made_in_convert_are_the_features_jobs_bytes(tmp_path, pad_ms, batch_mb):
    """convert_shard's feature store (computed while converting, in batches) is the one
    features_shard makes from the audio store: every file byte for byte; the features
    job takes it over (hard links) when its pad_ms matches, and computes otherwise."""
    from wakeprep.featurecache import features_job, usable
    from wakeprep.features import FeatureSettings
    from wakeprep.shards import convert_shard, features_shard

    manifest, corpus = _shard_corpus(tmp_path)
    settings = FeatureSettings(pad_ms=pad_ms, batch_mb=batch_mb)
    counts = convert_shard(manifest, corpus, AudioSettings(), tmp_path / "audio", tmp_path / "t.tsv",
                           features=settings, out_features=tmp_path / "made")
    assert counts["ok"] == 6
    features_shard(tmp_path / "audio", tmp_path / "computed", settings)
    names = sorted(p.name for p in (tmp_path / "computed").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "made").iterdir())
    for name in names:
        assert (tmp_path / "made" / name).read_bytes() == (tmp_path / "computed" / name).read_bytes(), name
    # taken over when pad_ms matches, computed from the audio otherwise: the same bytes
    assert usable(tmp_path / "made", tmp_path / "audio", pad_ms) == ""
    features_job(tmp_path / "made", tmp_path / "audio", tmp_path / "taken", {"pad_ms": pad_ms}, pad_ms)
    assert (tmp_path / "taken" / "data.bin").stat().st_ino == (tmp_path / "made" / "data.bin").stat().st_ino
    other = 10 if pad_ms != 10 else 0
    assert "pad_ms" in usable(tmp_path / "made", tmp_path / "audio", other)
    features_job(tmp_path / "made", tmp_path / "audio", tmp_path / "other", {"pad_ms": other}, other)
    features_shard(tmp_path / "audio", tmp_path / "other_ref", FeatureSettings(pad_ms=other))
    for name in names:
        assert (tmp_path / "other" / name).read_bytes() == (tmp_path / "other_ref" / name).read_bytes(), name
    for name in names:
        assert (tmp_path / "taken" / name).read_bytes() == (tmp_path / "computed" / name).read_bytes(), name


def test_convert_without_cpu_features_writes_a_store_that_says_so(tmp_path):
    """features.device cuda: the convert job computes nothing and says why; the features
    job then computes them itself (here on the CPU, as the GPU would: same codes)."""
    from wakeprep.featurecache import features_job, usable
    from wakeprep.features import FeatureSettings
    from wakeprep.shards import convert_shard, features_shard
    from wakeprep.store import RaggedStore

    manifest, corpus = _shard_corpus(tmp_path)
    convert_shard(manifest, corpus, AudioSettings(), tmp_path / "audio", tmp_path / "t.tsv",
                  features=FeatureSettings(device="cuda"), out_features=tmp_path / "made")
    assert len(RaggedStore(tmp_path / "made")) == 0
    assert "cuda" in usable(tmp_path / "made", tmp_path / "audio", 0)
    features_job(tmp_path / "made", tmp_path / "audio", tmp_path / "features", {}, 0)
    features_shard(tmp_path / "audio", tmp_path / "ref")
    assert (tmp_path / "features" / "data.bin").read_bytes() == (tmp_path / "ref" / "data.bin").read_bytes()
    # another shard's store (other clips) is never taken over
    convert_shard(manifest, corpus, AudioSettings(), tmp_path / "audio2", tmp_path / "t2.tsv",
                  features=FeatureSettings(), out_features=tmp_path / "made2")
    (tmp_path / "made2" / "ids.txt").write_text("c/f0\n")
    assert "clips" in usable(tmp_path / "made2", tmp_path / "audio2", 0)


def test_featurecache_names_the_stores_files():
    from wakeprep import featurecache, store

    assert (featurecache.META, featurecache.IDS) == (store.META, store.IDS)


@pytest.mark.parametrize("pad_ms", [0, 30])
def test_feature_batcher_over_many_flushes_is_one_batch_s_bytes(tmp_path, pad_ms):
    """The convert job's batcher, its budget cut small so that it flushes often (its buffer
    reused, and grown for a clip larger than the budget): the same store, byte for byte, as
    every clip in one batch."""
    from wakeprep.features import FeatureSettings, features_batch
    from wakeprep.shards import _FeatureBatcher
    from wakeprep.store import RaggedWriter

    rng = np.random.default_rng(3)
    clips = [(rng.standard_normal(int(n)) * 3000).astype(np.int16)
             for n in [0, 1, 399, 400, 640, 3000, 16000, 9000, 50000, 700, 2000, 12345]]
    settings = FeatureSettings(pad_ms=pad_ms)
    for name, budget in (("small", 20000), ("one", 10**9)):
        with RaggedWriter(tmp_path / name, np.uint16, (40,)) as writer:
            batcher = _FeatureBatcher(writer, settings)
            batcher.budget = budget
            for k, clip in enumerate(clips):
                batcher.add(f"c{k}", clip)
            batcher.flush()
    with RaggedWriter(tmp_path / "ref", np.uint16, (40,)) as writer:  # clip by clip
        for k, clip in enumerate(clips):
            padded = np.pad(clip, pad_ms * 16)
            writer.append(f"c{k}", features_batch(padded, [0, len(padded)])[0])
    for name in sorted(p.name for p in (tmp_path / "ref").iterdir()):
        for made in ("small", "one"):
            assert (tmp_path / made / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), (made, name)


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("WAVEX", "PCM_16"), ("FLAC", "PCM_16"), ("WAV", "PCM_24")])
@pytest.mark.parametrize("channels", [1, 2])
def test_decode_gives_libsndfiles_float32_bits(tmp_path, fmt, subtype, channels):
    """16-bit PCM WAV is read as int16 and scaled here (cheaper than libsndfile's float32
    conversion); every format keeps libsndfile's float32 bits, full scale and the smallest
    steps included."""
    import soundfile as sf

    from wakeprep.audio import _decode_soundfile

    rng = np.random.default_rng(7)
    pcm = rng.integers(-32768, 32768, (9_000, channels), dtype=np.int16)
    pcm[:4, 0] = [-32768, 32767, 1, -1]
    path = tmp_path / f"x.{'flac' if fmt == 'FLAC' else 'wav'}"
    sf.write(path, pcm, 16000, format=fmt, subtype=subtype)
    got, info = _decode_soundfile(str(path))
    want = sf.read(path, dtype="float32", always_2d=True)[0]
    assert info[2:4] == (fmt, subtype) and got.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
