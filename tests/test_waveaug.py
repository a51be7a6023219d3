"""Waveform augmentation (wakeprep.waveaug, rule augment_audio).

CPU tests run everywhere. Tests marked ``gpu`` need CuPy and a usable CUDA device and
skip cleanly without them: ``python3 -m pytest -q -m gpu tests/test_waveaug.py``.
"""

import json

import numpy as np
import pytest
from scipy.signal import sosfilt, sosfilt_zi

from wakeprep.augment import NoGpuError, gpu_status
from wakeprep.store import RaggedStore, RaggedWriter
from wakeprep.table import read_table
from wakeprep.waveaug import TRANSFORMS, AugmentInputError, Backend, WaveAugSettings, apply_chain, draw_params
from wakeprep.waveaug import chain as C
from wakeprep.waveaug.draws import clip_hash, snr_db
from wakeprep.waveaug.job import augment_audio_part, plan_parts

GPU_OK, GPU_WHY = gpu_status()
needs_gpu = pytest.mark.skipif(not GPU_OK, reason=f"no usable GPU: {GPU_WHY}")
N = 51200  # 3.2 s windows, as microWakeWord's
CPU = Backend("cpu")


def only(**p):
    """Settings with every transform off except those given (name=probability)."""
    return WaveAugSettings.from_config({"probabilities": {k: float(p.get(k, 0.0)) for k in TRANSFORMS}}, seed=5)


def params_for(settings, n, noise_lengths=(), n_rirs=0, copies=1):
    win = np.repeat(np.arange(n), copies)
    return draw_params(settings, clip_hash([f"w/{i}" for i in win]), np.tile(np.arange(copies), n), N,
                       np.asarray(noise_lengths, np.int64), n_rirs)


def speechlike(n=4, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(N) / 16000
    x = np.zeros((n, N), np.float32)
    for r in range(n):
        for f in rng.uniform(100, 4000, 6):
            x[r] += (0.05 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6))).astype(np.float32)
        x[r] += rng.standard_normal(N).astype(np.float32) * 0.01
    return x


def write_store(path, items, dtype=np.int16):
    with RaggedWriter(path, dtype) as w:
        for k, v in items.items():
            w.append(k, np.asarray(v, dtype))
    return path


def windows_store(path, n=6, seed=0):
    x = speechlike(n, seed)
    return write_store(path, {f"pos/c{i:02d}#w0": (x[i] * 32768).astype(np.int16) for i in range(n)})


def noise_store(path, names, seconds=5.0, seed=1, level=3000):
    rng = np.random.default_rng(seed)
    return write_store(path, {k: (rng.standard_normal(int(seconds * 16000)) * level).astype(np.int16) for k in names})


def rir_store(path, names, seed=2):
    rng = np.random.default_rng(seed)
    t = np.arange(4000)
    out = {}
    for k in names:
        h = rng.standard_normal(4000) * np.exp(-t / 600) * 8000
        h[0] = 30000
        out[k] = h.astype(np.int16)
    return write_store(path, out)


# --------------------------------------------------------------------------- each transform on a known signal


def test_gain_in_db_is_exact():
    s = only(Gain=1.0)
    p = params_for(s, 4)
    x = speechlike(4) * 0.1
    y, _ = apply_chain(CPU, x.copy(), p)
    want = x * (10.0 ** (p.gain_db / 20.0)).astype(np.float32)[:, None]
    np.testing.assert_array_equal(y, want)
    assert (p.gain_db >= -45).all() and (p.gain_db <= 0).all()
    ratio_db = 20 * np.log10(np.abs(y[:, 100]) / np.abs(x[:, 100]))
    np.testing.assert_allclose(ratio_db, p.gain_db, atol=1e-4)


def test_unit_impulse_rir_leaves_the_clip_unchanged():
    x = speechlike(3)
    h = np.zeros((3, 300), np.float32)
    h[:, 0] = 1.0
    y = C.convolve_rir(CPU, x, h)
    # audiomentations' ApplyImpulseResponse scales the result to a 0.5 peak: undo that
    peak = np.abs(x).max(axis=1, keepdims=True)
    np.testing.assert_allclose(y * peak / 0.5, x, atol=2e-6)


def test_rir_matches_audiomentations_definition():
    from scipy.signal import convolve

    x = speechlike(1)
    h = (np.random.default_rng(0).standard_normal(3000) * np.exp(-np.arange(3000) / 400)).astype(np.float32)
    full = convolve(x[0].astype(np.float64), h)
    want = (full * 0.5 / np.abs(full).max())[:N]
    np.testing.assert_allclose(C.convolve_rir(CPU, x, h[None])[0], want, atol=1e-6)


def band_energy_db(y, lo, hi):
    f = np.fft.rfftfreq(y.size, 1 / 16000)
    p = np.abs(np.fft.rfft(y)) ** 2
    return 10 * np.log10(p[(f >= lo) & (f <= hi)].mean())


def test_band_stop_removes_its_band():
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((1, N)) * 0.1).astype(np.float32)
    sos = C.bandstop_sos(np.array([4]), np.array([1000.0]), np.array([600.0]))
    y = C.sos_filter(CPU, x, sos)[0]
    inside = band_energy_db(y, 900, 1100) - band_energy_db(x[0], 900, 1100)
    outside = band_energy_db(y, 3000, 6000) - band_energy_db(x[0], 3000, 6000)
    assert inside < -30 and abs(outside) < 0.5, (inside, outside)


@pytest.mark.parametrize("fft", [False, True], ids=["cpu-sosfilt", "gpu-algorithm-fft"])
@pytest.mark.parametrize("which", ["eq", "bandstop"])
def test_filters_equal_scipy_sosfilt_with_audiomentations_initial_state(which, fft):
    s = only(SevenBandParametricEQ=1.0, BandStopFilter=1.0)
    p = params_for(s, 5)
    x = speechlike(5)
    x[:, 0] = np.linspace(-0.3, 0.3, 5)  # sosfilt_zi * x[0] matters
    if which == "eq":
        sos = C.eq_sos(p.eq_center_hz, p.eq_gain_db, p.eq_q)
    else:
        sos = C.bandstop_sos(p.bandstop_order, p.bandstop_center_hz, p.bandstop_bandwidth_hz)
    y = C.sos_filter(CPU, x, sos, fft_on_cpu=fft)
    for r in range(5):
        ref, _ = sosfilt(sos[r], x[r].astype(np.float64), zi=sosfilt_zi(sos[r]) * x[r, 0])
        np.testing.assert_allclose(y[r], ref, atol=2e-6)


def test_tanh_and_gain_transition_match_audiomentations():
    A = pytest.importorskip("audiomentations")
    x = speechlike(1)[0]
    t = A.TanhDistortion(min_distortion=0.07, max_distortion=0.07, p=1.0)
    np.testing.assert_allclose(C.tanh_distortion(CPU, x[None], np.array([0.07]))[0], t(x, 16000), atol=1e-6)
    g = A.GainTransition(min_gain_db=-10, max_gain_db=10, p=1.0)
    g.randomize_parameters(x, 16000)
    g.freeze_parameters()
    q = g.parameters
    y = C.gain_transition(CPU, x[None], np.array([q["fade_time_samples"]]), np.array([q["t0"]]),
                          np.array([q["start_gain_db"]]), np.array([q["end_gain_db"]]))
    np.testing.assert_allclose(y[0], g(x, 16000), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("semitones", [-3.0, 2.0, 12.0])
def test_pitch_shift_moves_a_tone_and_keeps_length_and_level(semitones):
    t = np.arange(N) / 16000
    x = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    y = C.pitch_shift(CPU, x, np.array([semitones]))[0]
    assert y.shape == (N,)
    mid = y[4000:-4000]
    f = np.fft.rfftfreq(mid.size, 1 / 16000)[np.argmax(np.abs(np.fft.rfft(mid)))]
    assert abs(f - 440 * 2 ** (semitones / 12)) < 3
    assert abs(np.sqrt(np.mean(mid**2)) / np.sqrt(np.mean(x**2)) - 1) < 0.02


def test_pitch_shift_is_stable_at_an_onset_after_silence():
    """A tiny input change (as float rounding between devices) must not move the output."""
    t = np.arange(N) / 16000
    x = np.zeros((1, N), np.float32)
    x[0, 20000:] = 0.3 * np.sin(2 * np.pi * 300 * t[20000:]) * np.sin(2 * np.pi * 3 * t[20000:])
    noise = np.random.default_rng(0).standard_normal(x.shape).astype(np.float32) * 1e-7
    d = np.abs(C.pitch_shift(CPU, x, np.array([2.0])) - C.pitch_shift(CPU, x + noise, np.array([2.0])))
    assert d.max() < 1e-3


class NumpyAsDevice:
    """NumPy under another name: a Backend with it takes every branch the CuPy path takes
    (``xp is np`` is false), so the GPU path's algorithm runs here, on the CPU."""

    def __getattr__(self, name):
        return getattr(np, name)


def test_the_gpu_paths_algorithm_run_on_the_cpu_is_within_two_lsb_of_the_cpu_path(tmp_path):
    """The GPU path differs from the CPU path in its filters (FFT instead of sosfilt) and in
    how it builds complex spectra; the rest is the same code. Run it with NumPy and compare."""
    from wakeprep.waveaug.banks import ClipSet
    from wakeprep.waveaug.job import augment_batch

    w, sets = make_inputs(tmp_path, n=24)
    store = RaggedStore(w)
    audio = np.asarray(store.data).reshape(24, N)
    s = WaveAugSettings.from_config({"probabilities": {k: 0.5 for k in TRANSFORMS}}, seed=1)
    noise = ClipSet("noise", "train", sets["train"]["noise_stores"], ["demo_noise"])
    rirs = ClipSet("RIR", "train", sets["train"]["rir_stores"], ["demo_rir"])
    cpu, pc, mc, _, _ = augment_batch(CPU, audio, store.ids, 2, s, noise, rirs)
    device = Backend("cpu")
    device.xp = NumpyAsDevice()
    gpu_way, pg, mg, _, _ = augment_batch(device, audio, store.ids, 2, s, noise, rirs)
    np.testing.assert_array_equal(pc.gain_db, pg.gain_db)
    assert np.abs(cpu.astype(np.int32) - gpu_way.astype(np.int32)).max() <= 2  # 1 measured here; 2 on the bench windows
    np.testing.assert_allclose(mc["signal_rms"], mg["signal_rms"], rtol=1e-5)


def test_bandstop_zeros_and_poles_give_scipy_butters_filter():
    """The GPU path designs the band-stops in one vectorised step (no per-row butter call):
    its frequency response equals scipy's second-order sections."""
    from scipy.signal import freqz_zpk, sosfreqz

    p = params_for(only(BandStopFilter=1.0), 40)
    z, q, k = C.bandstop_zpk(p.bandstop_order, p.bandstop_center_hz, p.bandstop_bandwidth_hz)
    sos = C.bandstop_sos(p.bandstop_order, p.bandstop_center_hz, p.bandstop_bandwidth_hz)
    w = np.linspace(0, np.pi, 1000)
    for r in range(40):
        np.testing.assert_allclose(freqz_zpk(z[r], q[r], k[r], worN=w)[1], sosfreqz(sos[r], worN=w)[1], atol=1e-9)
    x = speechlike(3)
    np.testing.assert_allclose(C.zpk_filter_fft(CPU, x, z[:3], q[:3], k[:3]), C.sos_filter(CPU, x, sos[:3]), atol=2e-5)


def test_device_bank_gathers_the_same_segments_and_levels_as_the_host(tmp_path):
    """Noise segments (offsets, repetition of short clips, silent clips) and impulse
    responses gathered from the whole set in (device) memory equal the host's reads, and
    the RMS is bit for bit the same (an exact integer sum of squares)."""
    from wakeprep.waveaug.banks import ClipSet, DeviceBank

    st = noise_store(tmp_path / "n", ["n/a", "n/b", "n/c"], seconds=5.0)
    write_store(tmp_path / "s", {"s/short": (np.arange(3000) % 200 - 100).astype(np.int16) * 50,
                                  "s/silent": np.zeros(N, np.int16), "s/empty": np.zeros(0, np.int16)})
    clips = ClipSet("noise", "train", [st, tmp_path / "s"], ["n"])
    device = Backend("cpu")
    device.xp = NumpyAsDevice()
    bank = DeviceBank(clips, device)
    assert bank.resident
    index = np.array([0, 1, 2, 3, 4, 5, 0, 3])
    offset = np.array([0, 7, 80000 - N, 0, 0, 0, 28799, 2999])
    want, want_level = clips.segments(index, offset, N)
    got, level = bank.segments(index, offset, N)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(level, want_level)
    np.testing.assert_array_equal(bank.responses(np.array([3, 5, 1])), clips.responses(np.array([3, 5, 1])))
    assert not DeviceBank(clips, device, max_bytes=1000).resident  # too big: the host path


def test_parameter_table_text_is_the_rows_written_cell_by_cell():
    from wakeprep.table import _cell
    from wakeprep.waveaug.draws import param_columns, param_rows, param_table

    s = WaveAugSettings.from_config({"probabilities": {k: 0.5 for k in TRANSFORMS}}, seed=2)
    p = params_for(s, 32, noise_lengths=(N, 2 * N), n_rirs=3, copies=2)
    m = {k: np.random.default_rng(0).random(64) for k in C.MEASURED}
    m["color_rms"][3] = np.inf
    args = ([f"w{i}#aug0" for i in range(64)], [f"w{i}" for i in range(64)], np.arange(64) % 2,
            ["n/x", "n/y"], ["r/a", "r/b", "r/c"], m)
    rows = param_rows(p, *args)
    want = "".join("\t".join(_cell(r.get(c)) for c in param_columns()) + "\n" for r in rows)
    assert param_table(p, *args) == want


def test_colour_noise_has_its_slope_and_snr():
    s = only(AddColorNoise=1.0)
    p = params_for(s, 8)
    x = speechlike(8)
    y, m = apply_chain(CPU, x.copy(), p)
    added = y - x
    got = 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=1)) / np.sqrt(np.mean(added.astype(np.float64) ** 2, axis=1)))
    np.testing.assert_allclose(got, p.color_snr_db, atol=0.01)
    for r in range(8):  # slope in dB/octave between 500 Hz and 4 kHz, measured on the noise
        lo, hi = band_energy_db(added[r], 400, 600), band_energy_db(added[r], 3200, 4800)
        assert abs((hi - lo) / 3 - p.color_f_decay[r]) < 0.6


def test_too_loud_audio_is_normalised_and_quiet_audio_is_not():
    s = only()
    x = speechlike(2)
    x[0] *= 40  # peak well above 1
    y, m = apply_chain(CPU, x.copy(), params_for(s, 2))
    assert np.abs(y[0]).max() == pytest.approx(1.0) and m["normalised_by"][0] > 1
    np.testing.assert_array_equal(y[1], x[1])


def test_int16_conversion_is_microwakewords():
    x = np.array([[-1.5, -1.0, -0.5 / 32768, 0.99999, 1.0, 2.0]], np.float32)
    assert C.to_int16(CPU, x).tolist() == [[-32768, -32768, 0, 32767, 32767, 32767]]


# --------------------------------------------------------------------------- draws


def test_draws_depend_only_on_seed_window_copy_and_transform():
    s = WaveAugSettings(seed=9)
    a = draw_params(s, clip_hash(["a", "b", "c"]), np.array([0, 0, 1]), N, np.array([N * 2]), 3)
    b = draw_params(s, clip_hash(["c", "b"]), np.array([1, 0]), N, np.array([N * 2]), 3)
    assert a.gain_db[2] == b.gain_db[0] and a.gain_db[1] == b.gain_db[1]
    np.testing.assert_array_equal(a.eq_center_hz[2], b.eq_center_hz[0])
    # a probability changes only its own coin
    t = WaveAugSettings.from_config({"probabilities": {"Gain": 0.3}}, seed=9)
    c = draw_params(t, clip_hash(["a", "b", "c"]), np.array([0, 0, 1]), N, np.array([N * 2]), 3)
    np.testing.assert_array_equal(a.apply["RIR"], c.apply["RIR"])
    np.testing.assert_array_equal(a.gain_db, c.gain_db)
    # coins follow their probabilities
    many = draw_params(s, clip_hash([f"x{i}" for i in range(20000)]), np.zeros(20000, np.int64), N, np.array([N]), 2)
    assert abs(many.apply["AddBackgroundNoise"].mean() - 0.75) < 0.02
    assert abs(many.apply["RIR"].mean() - 0.5) < 0.02 and many.apply["Gain"].all()
    assert not many.apply["GainTransition"].any()
    assert (many.background_snr_db >= -5).all() and (many.background_snr_db <= 10).all()
    assert set(np.unique(many.rir_index)) == {0, 1} and set(np.unique(many.bandstop_order)) == {2, 3, 4}


# --------------------------------------------------------------------------- the part job


def make_inputs(tmp_path, n=6):
    w = windows_store(tmp_path / "windows" / "audio", n)
    sets = {}
    for split in ("train", "validation"):
        sets[split] = dict(
            noise_stores=[noise_store(tmp_path / split / "noise", [f"demo_noise/{split}_{k}" for k in range(3)], seed=len(split))],
            rir_stores=[rir_store(tmp_path / split / "rir", [f"demo_rir/{split}_{k}" for k in range(2)], seed=len(split))],
            noise_corpora=["demo_noise"], rir_corpora=["demo_rir"],
        )
    return w, sets


def run_part(w, out, sets, split="train", settings=None, **kw):
    kw.setdefault("first", 0)
    kw.setdefault("stop", len(RaggedStore(w)))
    kw.setdefault("repetitions", 2)
    return augment_audio_part(w, out, settings=settings or WaveAugSettings(seed=3), split=split, device="cpu", **sets[split], **kw)


def test_part_job_writes_features_and_parameters_deterministically(tmp_path):
    w, sets = make_inputs(tmp_path)
    rep = run_part(w, tmp_path / "a", sets, batch_items=4)
    run_part(w, tmp_path / "b", sets, batch_items=1)  # batching does not change the bytes
    run_part(w, tmp_path / "b2", sets, batch_items=2, overlap=True)  # nor writing on a second thread (the GPU's way)
    for other in ("b", "b2"):
        for name in ("features/data.bin", "features/ids.txt", "features/lengths.bin", "params.tsv", "augment_audio.json"):
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / other / name).read_bytes(), name
    f = RaggedStore(tmp_path / "a" / "features")
    assert len(f) == 12 and rep["items"] == 12 and f.ids[:2] == ["pos/c00#w0#aug0", "pos/c00#w0#aug1"]
    assert f.dtype == np.uint16 and f.row_shape == (40,) and (f.lengths == f.lengths[0]).all()
    rows = list(read_table(tmp_path / "a" / "params.tsv"))
    assert [r["item_id"] for r in rows] == f.ids
    # the two copies of a window differ
    assert not np.array_equal(f[0], f[1])
    # a part is the same bytes as the same windows inside a larger run
    run_part(w, tmp_path / "c", sets, first=2, stop=4)
    part = RaggedStore(tmp_path / "c" / "features")
    np.testing.assert_array_equal(part[0], f[4])


def test_snr_of_every_mixed_copy_is_in_the_configured_range(tmp_path):
    w, sets = make_inputs(tmp_path, n=20)
    s = WaveAugSettings.from_config({"probabilities": {"AddBackgroundNoise": 1.0, "Gain": 0.0, "RIR": 0.0}}, seed=11)
    run_part(w, tmp_path / "o", sets, settings=s, repetitions=3)
    rows = list(read_table(tmp_path / "o" / "params.tsv"))
    mixed = [r for r in rows if r["AddBackgroundNoise"] == "1"]
    assert len(mixed) == 60
    snr = snr_db([float(r["signal_rms"]) for r in mixed], [float(r["noise_rms"]) for r in mixed])
    drawn = np.array([float(r["background_snr_db"]) for r in mixed])
    assert (snr >= -5 - 1e-3).all() and (snr <= 10 + 1e-3).all()
    np.testing.assert_allclose(snr, drawn, atol=1e-3)
    # measured on the audio itself: what the chain added, against the clean window
    p = params_for(only(AddBackgroundNoise=1.0), 4, noise_lengths=[5 * 16000])
    x = speechlike(4)
    segs = np.random.default_rng(0).standard_normal((4, N)).astype(np.float32) * 0.1
    y, _ = apply_chain(CPU, x.copy(), p, noise=segs, noise_rms=np.sqrt(np.mean(segs.astype(np.float64) ** 2, axis=1)))
    got = 20 * np.log10(np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=1)) / np.sqrt(np.mean((y - x).astype(np.float64) ** 2, axis=1)))
    np.testing.assert_allclose(got, p.background_snr_db, atol=0.01)


def test_split_hygiene_copies_use_only_their_splits_noise_and_rirs(tmp_path):
    w, sets = make_inputs(tmp_path, n=20)
    s = WaveAugSettings.from_config({"probabilities": {"AddBackgroundNoise": 1.0, "RIR": 1.0}}, seed=2)
    used = {}
    for split in ("train", "validation"):
        run_part(w, tmp_path / split / "out", sets, split=split, settings=s)
        rows = list(read_table(tmp_path / split / "out" / "params.tsv"))
        used[split] = {r["noise_clip"] for r in rows} | {r["rir_clip"] for r in rows}
        assert all(u.split("/")[1].startswith(split) for u in used[split]), used[split]
    assert used["train"].isdisjoint(used["validation"])
    assert len(used["train"]) == 5  # every clip of the train sets was drawn


@pytest.mark.parametrize("problem", ["empty", "silent", "short"])
def test_bad_noise_set_fails_with_one_clear_error_before_any_work(tmp_path, problem):
    w = windows_store(tmp_path / "w", 2)
    if problem == "empty":
        noise = write_store(tmp_path / "n", {})
    elif problem == "silent":
        noise = write_store(tmp_path / "n", {"my_noise/a": np.zeros(N * 2)})
    else:
        noise = noise_store(tmp_path / "n", ["my_noise/a"], seconds=1.0)
    kw = dict(settings=WaveAugSettings(), split="train", noise_stores=[noise], noise_corpora=["my_noise"])
    with pytest.raises(AugmentInputError) as e:
        plan_parts(w, tmp_path / "plan.json", part_items=10, **kw)
    msg = str(e.value)
    assert "my_noise" in msg and "split 'train'" in msg and "AddBackgroundNoise: 0" in msg and "\n" not in msg
    # the part job checks the same, before it asks for a GPU
    with pytest.raises(AugmentInputError):
        augment_audio_part(w, tmp_path / "o", first=0, stop=2, repetitions=1, device="cuda", **kw)
    assert not (tmp_path / "o").exists()


def test_empty_rir_set_fails_naming_it(tmp_path):
    w = windows_store(tmp_path / "w", 2)
    rir = write_store(tmp_path / "r", {})
    with pytest.raises(AugmentInputError, match="the RIR set of split 'test' \\(corpora my_rirs\\).*RIR: 0"):
        plan_parts(w, tmp_path / "plan.json", part_items=10, settings=WaveAugSettings(), split="test",
                   rir_stores=[rir], rir_corpora=["my_rirs"])


def test_plan_cuts_parts_and_names_the_sets(tmp_path):
    w, sets = make_inputs(tmp_path, n=7)
    plan = plan_parts(w, tmp_path / "plan.json", part_items=3, settings=WaveAugSettings(), split="train", **sets["train"])
    assert plan["parts"] == [[0, 3], [3, 6], [6, 7]] and plan["window_samples"] == N
    assert plan["noise"]["corpora"] == ["demo_noise"] and plan["noise"]["clips"] == 3 and plan["rir"]["clips"] == 2
    assert json.loads((tmp_path / "plan.json").read_text()) == plan


@pytest.mark.skipif(GPU_OK, reason="a GPU is here")
def test_cuda_without_gpu_fails_loudly(tmp_path):
    w, sets = make_inputs(tmp_path, n=2)
    with pytest.raises(NoGpuError, match="augment.device: cpu"):
        augment_audio_part(w, tmp_path / "o", first=0, stop=2, repetitions=1, settings=WaveAugSettings(),
                           split="train", device="cuda", **sets["train"])
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@needs_gpu
def test_gpu_and_cpu_use_the_same_parameters_and_agree_after_int16_rounding(tmp_path):
    """Every transform on, 64 windows x 2 copies: the documented tolerance (docs/augment_audio.md)."""
    from wakeprep.waveaug.banks import ClipSet
    from wakeprep.waveaug.job import augment_batch

    w, sets = make_inputs(tmp_path, n=64)
    store = RaggedStore(w)
    audio = np.asarray(store.data).reshape(64, N)
    s = WaveAugSettings.from_config({"probabilities": {k: 0.5 for k in TRANSFORMS}}, seed=1)
    noise = ClipSet("noise", "train", sets["train"]["noise_stores"], ["demo_noise"])
    rirs = ClipSet("RIR", "train", sets["train"]["rir_stores"], ["demo_rir"])
    cpu, pc, mc, _, _ = augment_batch(Backend("cpu"), audio, store.ids, 2, s, noise, rirs)
    gpu, pg, mg, _, _ = augment_batch(Backend("cuda"), audio, store.ids, 2, s, noise, rirs)
    for k in pc.apply:
        np.testing.assert_array_equal(pc.apply[k], pg.apply[k])
    np.testing.assert_array_equal(pc.gain_db, pg.gain_db)
    diff = np.abs(cpu.astype(np.int32) - gpu.astype(np.int32))
    print(f"max |cpu - gpu| = {diff.max()} LSB, mean {diff.mean():.4f}, rows differing {int((diff.max(axis=1) > 0).sum())}/{len(diff)}")
    assert diff.max() <= 4
    for k in ("signal_rms", "noise_rms", "normalised_by"):
        np.testing.assert_allclose(mc[k], mg[k], rtol=1e-4)


@pytest.mark.gpu
@needs_gpu
def test_gpu_part_job_is_deterministic(tmp_path):
    w, sets = make_inputs(tmp_path, n=8)
    for out in ("a", "b"):
        augment_audio_part(w, tmp_path / out, first=0, stop=8, repetitions=2, settings=WaveAugSettings(seed=4),
                           split="train", device="cuda", batch_items=3, **sets["train"])
    for name in ("features/data.bin", "params.tsv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.gpu
@needs_gpu
def test_gpu_part_job_writes_the_features_of_its_batches_audio(tmp_path):
    """The pipelined GPU job (pinned reads, noise and RIR sets in device memory, features
    computed on the device, asynchronous copies, writer thread) writes exactly the features
    of what augment_batch makes of the same batches on the same device."""
    from wakeprep.features import features_batch
    from wakeprep.waveaug.banks import ClipSet
    from wakeprep.waveaug.job import augment_batch

    w, sets = make_inputs(tmp_path, n=10)
    s = WaveAugSettings.from_config({"probabilities": {k: 0.5 for k in TRANSFORMS}}, seed=6)
    augment_audio_part(w, tmp_path / "g", first=0, stop=10, repetitions=2, settings=s, split="train", device="cuda",
                       batch_items=4, **sets["train"])
    store = RaggedStore(w)
    audio = np.asarray(store.data).reshape(10, N)
    noise = ClipSet("noise", "train", sets["train"]["noise_stores"], ["demo_noise"])
    rirs = ClipSet("RIR", "train", sets["train"]["rir_stores"], ["demo_rir"])
    got = RaggedStore(tmp_path / "g" / "features")
    for a in range(0, 10, 4):
        b = min(a + 4, 10)
        pcm, *_ = augment_batch(Backend("cuda"), audio[a:b], store.ids[a:b], 2, s, noise, rirs)
        codes, _ = features_batch(pcm.reshape(-1), np.arange(len(pcm) + 1) * N, "cpu")
        np.testing.assert_array_equal(np.asarray(got.data[got.offsets[2 * a] : got.offsets[2 * b]]), codes)


def test_reading_a_batch_in_pieces_on_threads_gives_its_rows(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from wakeprep.waveaug import job

    w, _ = make_inputs(tmp_path, n=7)
    store = RaggedStore(w)
    monkeypatch.setattr(job, "READ_CHUNK", 10_000)  # several pieces per batch, the last one short
    with ThreadPoolExecutor(3) as pool:
        got = job.read_rows_into(store, 2, 6, np.empty(4 * N, np.int16), pool, then=(6, 7))
    np.testing.assert_array_equal(got, job.read_rows(store, 2, 6).reshape(-1))


def test_device_bank_uploads_a_set_in_pieces(tmp_path, monkeypatch):
    from wakeprep.waveaug import banks
    from wakeprep.waveaug.banks import ClipSet, DeviceBank

    clips = ClipSet("noise", "train", [noise_store(tmp_path / "a", ["n/a", "n/b"]), noise_store(tmp_path / "b", ["n/c"])], ["n"])
    monkeypatch.setattr(banks, "UPLOAD_SAMPLES", 30_001)
    device = Backend("cpu")
    device.xp = NumpyAsDevice()
    bank = DeviceBank(clips, device)
    np.testing.assert_array_equal(bank.data, np.concatenate([np.asarray(s.data) for s in clips.stores]))
