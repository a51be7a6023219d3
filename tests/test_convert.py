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
