"""Speech detection: boundaries on real speech, nothing on tones and noise, an SNR that follows the noise."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import soxr

from helpers import espeak_wav
from wakeprep.vad import FRAME, SpeechInfo, VadSettings, analyse

SILERO, WEBRTC = VadSettings(), VadSettings(method="webrtcvad")


@pytest.fixture(scope="module")
def phrase(tmp_path_factory):
    """'hey jarvis' at 16 kHz int16, between 0.5 s and 1.0 s of digital silence; with its true span."""
    path = espeak_wav(tmp_path_factory.mktemp("vad") / "a.wav", "hey jarvis")
    x, rate = sf.read(path, dtype="float32")
    pcm = np.rint(soxr.resample(x, rate, 16000) * 32767).astype(np.int16)
    clip = np.concatenate([np.zeros(8000, np.int16), pcm, np.zeros(16000, np.int16)])
    loud = np.flatnonzero(np.abs(clip) > 300)
    return clip, loud[0] / 16000, (loud[-1] + 1) / 16000


def noisy(clip, sigma, seed=0):
    n = np.random.default_rng(seed).standard_normal(len(clip)) * sigma
    return np.clip(clip + n, -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("settings", [SILERO, WEBRTC], ids=["silero", "webrtcvad"])
def test_speech_end_is_found_to_within_30_ms(phrase, settings):
    clip, start, end = phrase
    info = analyse(clip, settings)
    assert info.has_speech
    assert abs(info.end_s - end) <= 0.02
    assert start - 0.02 <= info.start_s <= start + 0.1
    assert 0 < info.ratio < 1


def test_silero_ignores_tones_and_noise_webrtcvad_does_not():
    t = np.arange(48000) / 16000
    tone = (np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16)
    noise = noisy(np.zeros(48000, np.int16), 3000)
    for x in (tone, noise):
        assert analyse(x, SILERO) == SpeechInfo(None, None, 0.0, None)
        assert analyse(x, WEBRTC).ratio > 0.9  # the documented weakness of webrtcvad


def test_snr_follows_added_noise(phrase):
    clip = phrase[0]
    snrs = [analyse(noisy(clip, s), SILERO).snr_db for s in (30, 300, 3000)]
    assert snrs[0] > snrs[1] > snrs[2]
    assert 10 < snrs[1] < 35 and -5 < snrs[2] < 10


def test_short_and_empty_clips():
    assert analyse(np.zeros(0, np.int16)) == SpeechInfo(None, None, 0.0, None)
    assert analyse(np.zeros(FRAME - 1, np.int16), WEBRTC) == SpeechInfo(None, None, 0.0, None)


def test_deterministic(phrase):
    clip = noisy(phrase[0], 300)
    assert analyse(clip) == analyse(clip.copy())


def test_columns_are_rounded_cells(phrase):
    cols = analyse(phrase[0]).columns()
    assert set(cols) == {"speech_start_s", "speech_end_s", "speech_ratio", "snr_db"}
    assert cols["speech_end_s"] == round(cols["speech_end_s"], 3)
    assert SpeechInfo(None, None, 0.0, None).columns()["speech_end_s"] is None


def _mixture(phrase, n=12):
    """Clips of different lengths: the phrase at offsets and noise levels, noise alone, a tone."""
    clip, rng = phrase[0], np.random.default_rng(3)
    out = []
    for i in range(n):
        lead = np.zeros(int(rng.integers(0, 16000)), np.int16)
        out.append(noisy(np.concatenate([lead, clip[: len(clip) - int(rng.integers(0, 8000))]]), [0, 100, 1000][i % 3], i))
    out.append(noisy(np.zeros(30000, np.int16), 2000))
    out.append((np.sin(np.arange(20000) * 0.2) * 8000).astype(np.int16))
    return out


def test_segments_equal_silero_vads_own_timestamps(phrase):
    """The ONNX whole-sequence path gives the segments of silero-vad's own torch model and code."""
    import torch
    from silero_vad import get_speech_timestamps, load_silero_vad

    from wakeprep.vad import SILERO_MIN_SILENCE_MS, SILERO_MIN_SPEECH_MS, silero_probs, silero_segments

    torch.set_num_threads(1)
    model = load_silero_vad()
    for clip in _mixture(phrase):
        wave = torch.from_numpy(clip.astype(np.float32) / 32768)
        ref = get_speech_timestamps(wave, model, threshold=0.5, min_speech_duration_ms=SILERO_MIN_SPEECH_MS,
                                    min_silence_duration_ms=SILERO_MIN_SILENCE_MS, speech_pad_ms=0)
        assert silero_segments(silero_probs(clip), len(clip), 0.5) == [(r["start"], r["end"]) for r in ref]


def test_many_clips_at_once_equal_one_at_a_time(phrase):
    from wakeprep.vad import analyse_many

    clips = _mixture(phrase)
    assert analyse_many(clips) == [analyse(c) for c in clips]
