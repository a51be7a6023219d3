"""Micro-frontend features: equal to pymicro-features (microWakeWord's frontend), code for
code and frame count for frame count, on every implementation.

The CPU path has two kernels (``wakeprep.frontend.cpu``: C when built, numba otherwise);
the equality tests run on each (the ``kernel`` fixture; the C ones skip only when its
library is not built). GPU tests live in tests/test_features_gpu.py (marked ``gpu``); here
the CUDA source is also compiled as plain C++ (when g++ is installed) and held to the same
answers.
"""

import ctypes
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pymicro_features import MicroFrontend

from helpers import espeak_wav
from wakeprep.audio import AudioSettings, convert_file
from wakeprep.augment import NoGpuError, gpu_status
from wakeprep.features import (
    FEATURE_SCALE,
    FeatureSettings,
    dequantise,
    features_batch,
    frame_count,
    micro_features,
    micro_features_u16,
    quantise,
    reference_u16,
)
from wakeprep.frontend import ckernel, cpu, reference, tables
from wakeprep.frontend.gpu import SOURCE as CUDA_SOURCE
from wakeprep.shards import features_shard
from wakeprep.store import RaggedStore, RaggedWriter


def direct_frontend(samples: np.ndarray) -> np.ndarray:
    """pymicro-features fed 10 ms at a time the way microWakeWord's
    generate_features_for_clip does (strictly while index + 320 < length), written here
    independently of the package."""
    data = samples.astype("<i2").tobytes()
    fe = MicroFrontend()
    out, i = [], 0
    while i + 320 < len(data):
        r = fe.process_samples(data[i : i + 320])
        i += r.samples_read * 2
        if r.features:
            out.append(r.features)
    return np.array(out, dtype=np.float32).reshape(-1, 40)


def batch(clips):
    clips = [np.asarray(c, dtype=np.int16) for c in clips]
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in clips])]).astype(np.int64)
    x = np.concatenate(clips) if clips else np.zeros(0, np.int16)
    return x, offsets


def signals(seed: int, seconds: float) -> list[np.ndarray]:
    """Noise at many levels, tones and sweeps, silence, DC, full-scale clipping and
    alternating extremes, in clips of many lengths; about ``seconds`` of audio."""
    rng = np.random.default_rng(seed)
    out, total = [], 0
    kinds = ["noise", "tone", "sweep", "clip", "silence", "dc", "extremes", "bursts"]
    while total < seconds * 16000:
        kind = kinds[len(out) % len(kinds)]
        n = int(rng.choice([int(rng.integers(0, 2000)), int(rng.integers(2000, 48000)), 160 * int(rng.integers(1, 200))]))
        t = np.arange(n) / 16000
        if kind == "noise":
            x = rng.standard_normal(n) * 10 ** rng.uniform(0, 4.5)
        elif kind == "tone":
            x = np.sin(2 * np.pi * rng.uniform(20, 7990) * t) * 10 ** rng.uniform(1, 4.52)
        elif kind == "sweep":
            x = np.sin(2 * np.pi * (50 + 4000 * t / max(t[-1] if n else 1, 1e-9)) * t) * 20000
        elif kind == "clip":
            x = rng.standard_normal(n) * 200000  # clipped to full scale below
        elif kind == "silence":
            x = np.zeros(n)
        elif kind == "dc":
            x = np.full(n, rng.choice([-32768, 32767, 1, -1, 12345]))
        elif kind == "extremes":
            x = np.where(np.arange(n) % 2, 32767, -32768) * (rng.random(n) < 0.999)
        else:
            x = rng.standard_normal(n) * 3000 * (np.sin(2 * np.pi * 3 * t) > 0.6)
        out.append(np.clip(np.rint(x), -32768, 32767).astype(np.int16))
        total += n
    return out


def c_kernel_or_skip():
    if ckernel.load() is None:
        pytest.skip(f"the C frontend kernel is not built ({ckernel.why()}); the numba kernel is tested")


@pytest.fixture(params=cpu.KERNELS)
def kernel(request, monkeypatch):
    """Each CPU kernel in turn as the one ``features_batch`` runs."""
    if request.param == "c":
        c_kernel_or_skip()
    monkeypatch.setattr(cpu, "KERNEL", request.param)
    return request.param


@pytest.fixture(scope="module")
def speech(tmp_path_factory, have_espeak):
    p = espeak_wav(tmp_path_factory.mktemp("f") / "s.wav", "hey jarvis, turn on the lights")
    res = convert_file(str(p), AudioSettings())
    assert res.status == "ok"
    return res.samples


def test_equal_to_pymicro_features_directly(speech, kernel):
    ours = micro_features(speech)
    ref = direct_frontend(speech)
    assert ours.shape == ref.shape and ours.shape[1] == 40
    np.testing.assert_array_equal(ours, ref)
    # uint16 storage is lossless
    codes = micro_features_u16(speech)
    assert codes.dtype == np.uint16
    np.testing.assert_array_equal(dequantise(codes), ref)
    np.testing.assert_array_equal(codes.astype(np.float64), ref.astype(np.float64) * FEATURE_SCALE)
    np.testing.assert_array_equal(reference_u16(speech), codes)


def test_one_second_gives_97_frames(kernel):
    """microWakeWord skips a final exact 10 ms block: 1.0 s gives 97 frames, not 98."""
    x = (np.random.default_rng(0).standard_normal(16000) * 3000).astype(np.int16)
    assert micro_features(x).shape == (97, 40)
    assert direct_frontend(x).shape == (97, 40)
    assert micro_features(x[:100]).shape == (0, 40)
    assert frame_count(16000) == 97 and frame_count(48000) == 297


@pytest.mark.parametrize("n", [0, 1, 159, 160, 161, 319, 320, 321, 479, 480, 481, 482, 639, 640, 641,
                               15999, 16000, 16001, 47999, 48000, 48001, 160 * 1000, 160 * 1000 + 1])
def test_boundary_lengths(n, kernel):
    """Lengths around multiples of 160 samples and shorter than one window."""
    x = (np.random.default_rng(n).standard_normal(n) * 2000).astype(np.int16)
    ref = quantise(direct_frontend(x))
    assert len(ref) == frame_count(n)
    ours = micro_features_u16(x)
    assert ours.shape == ref.shape == (frame_count(n), 40)
    np.testing.assert_array_equal(ours, ref)


@pytest.fixture(scope="module")
def many_signals():
    """About 300 s of clips and their codes from pymicro-features (computed once for both kernels)."""
    clips = signals(seed=1, seconds=300)
    return clips, [quantise(direct_frontend(clip)) for clip in clips]


def test_fast_path_equals_reference_on_many_signals(many_signals, kernel):
    """Tens of thousands of frames: noise, tones, sweeps, silence, DC, clipping, extremes."""
    clips, refs = many_signals
    x, offsets = batch(clips)
    codes, frame_offsets = features_batch(x, offsets)
    assert frame_offsets[-1] > 25_000
    for i, (clip, ref) in enumerate(zip(clips, refs)):
        got = codes[frame_offsets[i] : frame_offsets[i + 1]]
        assert got.shape == ref.shape, f"clip {i}: {len(clip)} samples"
        np.testing.assert_array_equal(got, ref, err_msg=f"clip {i}: {len(clip)} samples")


def test_fast_path_equals_reference_on_a_random_clip(kernel):
    """Fails whenever the fast path and pymicro-features disagree on fresh random audio."""
    seed = int(np.random.SeedSequence().entropy % 2**32)
    rng = np.random.default_rng(seed)
    n = int(rng.integers(16000, 160000))
    x = np.clip(rng.standard_normal(n) * 10 ** rng.uniform(1, 5), -32768, 32767).astype(np.int16)
    np.testing.assert_array_equal(micro_features_u16(x), reference_u16(x), err_msg=f"seed {seed}")


def test_batch_equals_one_clip_at_a_time(kernel):
    clips = signals(seed=2, seconds=20)
    x, offsets = batch(clips)
    codes, frame_offsets = features_batch(x, offsets)
    for i, clip in enumerate(clips):
        np.testing.assert_array_equal(codes[frame_offsets[i] : frame_offsets[i + 1]], micro_features_u16(clip))
    empty, fo = features_batch(np.zeros(0, np.int16), np.array([0]))
    assert empty.shape == (0, 40) and list(fo) == [0]
    with pytest.raises(ValueError, match="offsets"):
        features_batch(x, offsets[::-1])


def test_c_and_numba_kernels_agree_on_a_random_clip():
    """The two CPU kernels give the same codes on fresh random audio (several clips, one batch)."""
    c_kernel_or_skip()
    seed = int(np.random.SeedSequence().entropy % 2**32)
    rng = np.random.default_rng(seed)
    clips = [np.clip(rng.standard_normal(int(rng.integers(0, 64000))) * 10 ** rng.uniform(0, 5), -32768, 32767)
             .astype(np.int16) for _ in range(5)]
    x, offsets = batch(clips)
    c, fo_c = cpu.features_batch(x, offsets, kernel="c")
    n, fo_n = cpu.features_batch(x, offsets, kernel="numba")
    np.testing.assert_array_equal(fo_c, fo_n, err_msg=f"seed {seed}")
    np.testing.assert_array_equal(c, n, err_msg=f"seed {seed}")


def _python(code: str, **env) -> subprocess.CompletedProcess:
    from helpers import REPO

    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


def test_c_kernel_imports_neither_numba_nor_scipy():
    """The point of the C kernel: a process's first features without numba's start-up."""
    c_kernel_or_skip()
    code = (
        "import sys, numpy as np\n"
        "from wakeprep.features import micro_features_u16, reference_u16\n"
        "from wakeprep.frontend import cpu\n"
        "x = (np.random.default_rng(1).standard_normal(8000) * 2000).astype(np.int16)\n"
        "codes = micro_features_u16(x)\n"
        "assert cpu.KERNEL == 'c', cpu.KERNEL\n"
        "assert 'numba' not in sys.modules, 'the C path imported numba'\n"
        "assert 'scipy' not in sys.modules, 'the C path imported SciPy'\n"
        "assert np.array_equal(codes, reference_u16(x))\n"
    )
    proc = _python(code, WAKEPREP_CPU_KERNEL="auto")
    assert proc.returncode == 0, proc.stderr


def test_kernel_is_chosen_by_the_environment():
    code = "from wakeprep.frontend import cpu; print(cpu.KERNEL)"
    proc = _python(code, WAKEPREP_CPU_KERNEL="numba")
    assert proc.returncode == 0 and proc.stdout.strip() == "numba", proc.stderr
    proc = _python(code, WAKEPREP_CPU_KERNEL="fortran")
    assert proc.returncode != 0 and "WAKEPREP_CPU_KERNEL must be auto, c or numba" in proc.stderr
    with pytest.raises(ValueError, match="kernel must be one of"):
        cpu.features_batch(np.zeros(1000, np.int16), np.array([0, 1000]), kernel="fortran")


def test_numba_is_used_when_the_c_kernel_is_not_built(monkeypatch):
    monkeypatch.setattr(ckernel, "_lib", None)
    monkeypatch.setattr(ckernel, "candidates", lambda: [])
    assert cpu.choose_kernel("auto") == "numba"
    assert "no _cpu_kernel library" in ckernel.why()
    with pytest.raises(RuntimeError, match="C compiler"):
        cpu.choose_kernel("c")
    with pytest.raises(RuntimeError, match="not available"):
        cpu.features_batch(np.zeros(1000, np.int16), np.array([0, 1000]), kernel="c")


def test_c_kernel_refuses_a_library_built_for_other_arguments(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler")
    src = tmp_path / "old.c"
    src.write_text("int wp_frontend_abi(void) { return 0; }\nint wp_frontend_run(void) { return 0; }\n")
    so = tmp_path / "_cpu_kernel.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    with pytest.raises(OSError, match="argument version 0"):
        ckernel.open_library(so)


# the flags setup.py compiles with
C_FLAGS = ["-O3", "-fwrapv", "-fno-math-errno", "-shared", "-fPIC", "-DWP_NO_PYTHON"]


def _build_c_kernel(out, *flags, check=True):
    """cpu_kernel.c built with ``flags`` into ``out``; None when the compiler refuses and not ``check``."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        pytest.skip("no C compiler to build cpu_kernel.c")
    proc = subprocess.run([cc, *flags, "-o", str(out), str(ckernel.SOURCE), "-lm"], capture_output=True, text=True)
    if proc.returncode != 0:
        assert not check, proc.stderr
        return None
    return out


# x86-64 levels and the CPU flags (/proc/cpuinfo) each needs
X86_LEVELS = {
    "x86-64": set(),
    "x86-64-v2": {"cx16", "popcnt", "sse4_1", "sse4_2", "ssse3"},
    "x86-64-v3": {"avx", "avx2", "bmi1", "bmi2", "fma", "movbe"},
    "x86-64-v4": {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"},
}


def test_c_kernel_equal_on_every_x86_level_this_cpu_runs(tmp_path):
    """The library carries one version per x86-64 level and runs the best the CPU has; the
    others are built here one by one (as gcc compiles them, -DWP_NO_CLONES) and held to the
    numba kernel's codes on clipping, extremes, silence and noise."""
    if platform.machine() != "x86_64" or not os.path.exists("/proc/cpuinfo"):
        pytest.skip("x86-64 Linux only")
    flags = set()
    for line in open("/proc/cpuinfo"):
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    x, offsets = batch(signals(seed=6, seconds=40))
    want, _ = cpu.features_batch(x, offsets, kernel="numba")
    fo = tables.frame_offsets(offsets)
    tested = []
    for level, needs in X86_LEVELS.items():
        if not needs <= flags:
            continue
        so = _build_c_kernel(tmp_path / f"{level}.so", *C_FLAGS, "-DWP_NO_CLONES", f"-march={level}",
                             check=level == "x86-64")
        if so is None:  # a compiler older than the level names (gcc < 11)
            continue
        lib = ckernel.open_library(so)
        out = np.empty((int(fo[-1]), 40), np.uint16)
        ckernel.run(x, offsets, fo, out, cpu.tables(), lib=lib)
        np.testing.assert_array_equal(out, want, err_msg=level)
        tested.append(level)
    assert "x86-64" in tested


def test_c_kernel_has_no_undefined_behaviour(tmp_path):
    """Built without -fwrapv and with gcc's undefined-behaviour sanitizer (which stops at the
    first signed overflow, negative left shift or out-of-range shift), the kernel runs
    full-scale clipping, alternating extremes, DC, silence and noise and gives the codes."""
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux only")
    cc = shutil.which("gcc")
    if not cc:
        pytest.skip("no gcc")
    ubsan = subprocess.run([cc, "-print-file-name=libubsan.so"], capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(ubsan) or not os.path.exists(ubsan):
        pytest.skip("gcc has no libubsan")
    so = _build_c_kernel(tmp_path / "ubsan.so", "-O1", "-fno-math-errno", "-shared", "-fPIC", "-DWP_NO_PYTHON",
                         "-DWP_NO_CLONES", "-fsanitize=undefined", "-fno-sanitize-recover=all")
    code = (
        "import sys, numpy as np\n"
        "sys.path.insert(0, 'tests')\n"
        "from test_features import batch, signals\n"
        "from wakeprep.frontend import ckernel, cpu, tables\n"
        "x, offsets = batch(signals(seed=7, seconds=60))\n"
        "fo = tables.frame_offsets(offsets)\n"
        "out = np.empty((int(fo[-1]), 40), np.uint16)\n"
        f"ckernel.run(x, offsets, fo, out, cpu.tables(), lib=ckernel.open_library({str(so)!r}))\n"
        "want, _ = cpu.features_batch(x, offsets, kernel='numba')\n"
        "assert np.array_equal(out, want)\n"
        "print('ok')\n"
    )
    proc = _python(code, LD_PRELOAD=ubsan, UBSAN_OPTIONS="print_stacktrace=1")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


def _library():
    """The installed pymicro-features C library, when it exports the frontend's functions."""
    try:
        import micro_features_cpp

        lib = ctypes.CDLL(micro_features_cpp.__file__)
        lib.FilterbankPopulateState, lib.WindowPopulateState, lib.PcanGainControlPopulateState  # noqa: B018
        return lib
    except (ImportError, OSError, AttributeError):
        return None


@pytest.mark.skipif(_library() is None, reason="pymicro-features' library does not export the frontend's C functions")
def test_tables_equal_the_c_librarys():
    """Window, filterbank and PCAN tables rebuilt in Python equal the ones the C library builds."""
    lib = _library()
    P16 = ctypes.POINTER(ctypes.c_int16)

    class WindowConfig(ctypes.Structure):
        _fields_ = [("size_ms", ctypes.c_size_t), ("step_size_ms", ctypes.c_size_t)]

    class WindowState(ctypes.Structure):
        _fields_ = [("size", ctypes.c_size_t), ("coefficients", P16), ("step", ctypes.c_size_t),
                    ("input", ctypes.c_void_p), ("input_used", ctypes.c_size_t), ("output", ctypes.c_void_p),
                    ("max_abs_output_value", ctypes.c_int16)]

    class FilterbankConfig(ctypes.Structure):
        _fields_ = [("num_channels", ctypes.c_int), ("upper_band_limit", ctypes.c_float),
                    ("lower_band_limit", ctypes.c_float), ("output_scale_shift", ctypes.c_int)]

    class FilterbankState(ctypes.Structure):
        _fields_ = [("num_channels", ctypes.c_int), ("start_index", ctypes.c_int), ("end_index", ctypes.c_int),
                    ("channel_frequency_starts", P16), ("channel_weight_starts", P16), ("channel_widths", P16),
                    ("weights", P16), ("unweights", P16), ("work", ctypes.c_void_p)]

    class PcanConfig(ctypes.Structure):
        _fields_ = [("enable_pcan", ctypes.c_int), ("strength", ctypes.c_float), ("offset", ctypes.c_float),
                    ("gain_bits", ctypes.c_int)]

    class PcanState(ctypes.Structure):
        _fields_ = [("enable_pcan", ctypes.c_int), ("noise_estimate", ctypes.c_void_p), ("num_channels", ctypes.c_int),
                    ("gain_lut", P16), ("snr_shift", ctypes.c_int32)]

    ws = WindowState()
    assert lib.WindowPopulateState(ctypes.byref(WindowConfig(30, 10)), ctypes.byref(ws), 16000)
    np.testing.assert_array_equal(np.ctypeslib.as_array(ws.coefficients, (ws.size,)), tables.window_coefficients())

    fs = FilterbankState()
    assert lib.FilterbankPopulateState(ctypes.byref(FilterbankConfig(40, 7500.0, 125.0, 7)), ctypes.byref(fs), 16000, 257)
    n1 = 41
    starts, wstarts, widths = (np.ctypeslib.as_array(p, (n1,)).astype(int) for p in (fs.channel_frequency_starts,
                                                                                     fs.channel_weight_starts,
                                                                                     fs.channel_widths))
    nw = int((wstarts + widths).max())
    cw, cu = np.ctypeslib.as_array(fs.weights, (nw,)), np.ctypeslib.as_array(fs.unweights, (nw,))
    dense_c = np.zeros((2, n1 + 1, 257), np.int64)
    for c in range(n1):
        for j in range(widths[c]):
            dense_c[0, c, starts[c] + j] += cw[wstarts[c] + j]
            dense_c[1, c, starts[c] + j] += cu[wstarts[c] + j]
    start, end, ch, w, u = tables.filterbank()
    assert (start, end) == (fs.start_index, fs.end_index)
    dense = np.zeros_like(dense_c)
    dense[0, ch, np.arange(start, end)] = w
    dense[1, ch, np.arange(start, end)] = u
    np.testing.assert_array_equal(dense, dense_c)

    lib.PcanGainControlPopulateState.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                                                 ctypes.c_uint16, ctypes.c_int32]
    ps, estimate = PcanState(), (ctypes.c_uint32 * 40)()
    assert lib.PcanGainControlPopulateState(ctypes.byref(PcanConfig(1, 0.95, 80.0, 21)), ctypes.byref(ps), estimate,
                                            40, tables.SMOOTHING_BITS, tables.CORRECTION_BITS)
    used = [0, 1] + [4 * k - 6 + j for k in range(2, 33) for j in range(3)]
    np.testing.assert_array_equal(np.ctypeslib.as_array(ps.gain_lut, (125,))[used], tables.pcan_lut()[used])
    assert ps.snr_shift == tables.SNR_SHIFT


@pytest.fixture(scope="module")
def cuda_source_on_cpu(tmp_path_factory):
    """microfrontend.cu compiled as C++ for the CPU (the GPU kernels' integer code)."""
    gxx = shutil.which("g++") or shutil.which("c++")
    if not gxx:
        pytest.skip("no C++ compiler to build microfrontend.cu for the CPU")
    so = tmp_path_factory.mktemp("cu") / "mf_host.so"
    subprocess.run([gxx, "-O2", "-DMF_HOST", "-x", "c++", "-shared", "-fPIC", "-o", str(so), str(CUDA_SOURCE)], check=True)
    lib = ctypes.CDLL(str(so))

    def run(x, offsets):
        fo = np.zeros(len(offsets), np.int64)
        np.cumsum([frame_count(n) for n in np.diff(offsets)], out=fo[1:])
        sig = np.zeros((fo[-1], 40), np.uint32)
        out = np.zeros((fo[-1], 40), np.uint16)
        t = np.ascontiguousarray(tables.packed())
        start, end = tables.filterbank()[:2]
        p = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
        lib.mf_host(p(x), p(offsets), p(fo), ctypes.c_int(len(offsets) - 1), p(t), start, end,
                    *tables.noise_constants(), p(sig), p(out))
        return out, fo

    return run


def test_cuda_source_equals_reference_on_the_cpu(cuda_source_on_cpu, speech):
    clips = signals(seed=3, seconds=60) + [speech]
    x, offsets = batch(clips)
    codes, fo = cuda_source_on_cpu(x, offsets.astype(np.int64))
    fast, fo_fast = features_batch(x, offsets)
    np.testing.assert_array_equal(fo, fo_fast)
    np.testing.assert_array_equal(codes, fast)
    for i, clip in enumerate(clips[::5]):
        k = 5 * i
        np.testing.assert_array_equal(codes[fo[k] : fo[k + 1]], quantise(direct_frontend(clip)))


def test_reference_accepts_the_1x_api(monkeypatch):
    """pymicro-features 1.x (microWakeWord's) names the call ProcessSamples."""

    class Frontend1x:
        def __init__(self):
            self._fe = MicroFrontend()

        def ProcessSamples(self, audio):  # noqa: N802 - the 1.x name
            return self._fe.process_samples(audio)

    monkeypatch.setattr(reference, "MicroFrontend", Frontend1x)
    x = (np.random.default_rng(4).standard_normal(8000) * 1000).astype(np.int16)
    np.testing.assert_array_equal(reference_u16(x), micro_features_u16(x))


def test_quantise_range_checked():
    with pytest.raises(ValueError):
        quantise(np.array([[-1.0]]))


def test_settings_from_config():
    assert FeatureSettings.from_config({}) == FeatureSettings(pad_ms=0, device="cpu", batch_mb=64)
    assert FeatureSettings.from_config({"device": "cuda", "pad_ms": 20}).device == "cuda"
    with pytest.raises(ValueError, match="features.device"):
        FeatureSettings.from_config({"device": "gpu"})
    with pytest.raises(ValueError, match="unknown key"):
        FeatureSettings.from_config({"pad": 3})


@pytest.mark.skipif(gpu_status()[0], reason="a GPU is usable here")
def test_cuda_without_gpu_fails_loudly(tmp_path):
    x = np.zeros(16000, np.int16)
    with pytest.raises(NoGpuError, match="features.device: cpu"):
        micro_features_u16(x, device="cuda")
    with RaggedWriter(tmp_path / "audio", np.int16) as w:
        w.append("c/a", x)
    with pytest.raises(NoGpuError):
        features_shard(tmp_path / "audio", tmp_path / "feat", FeatureSettings(device="cuda"))
    assert not (tmp_path / "feat").exists()


def test_features_shard_matches_direct(tmp_path, speech):
    with RaggedWriter(tmp_path / "audio", np.int16, attrs={"corpus": "c", "label": "positive"}) as w:
        w.append("c/a", speech)
        w.append("c/b", speech[: len(speech) // 3])
        w.append("c/empty", speech[:0])
        w.append("c/short", speech[:400])
    features_shard(tmp_path / "audio", tmp_path / "feat")
    s = RaggedStore(tmp_path / "feat")
    assert s.row_shape == (40,) and s.dtype == np.uint16 and s.ids == ["c/a", "c/b", "c/empty", "c/short"]
    np.testing.assert_array_equal(dequantise(s["c/a"]), direct_frontend(speech))
    np.testing.assert_array_equal(dequantise(s["c/b"]), direct_frontend(speech[: len(speech) // 3]))
    assert len(s["c/empty"]) == 0 and len(s["c/short"]) == 0
    features_shard(tmp_path / "audio", tmp_path / "feat_pad", pad_ms=100)
    padded = RaggedStore(tmp_path / "feat_pad")
    assert len(padded["c/a"]) == len(s["c/a"]) + 20
    padded_speech = np.concatenate([np.zeros(1600, np.int16), speech, np.zeros(1600, np.int16)])
    np.testing.assert_array_equal(dequantise(padded["c/a"]), direct_frontend(padded_speech))


def test_features_shard_in_several_batches(tmp_path):
    """Batches of at most 1 MiB of audio give the same bytes as one batch."""
    rng = np.random.default_rng(5)
    with RaggedWriter(tmp_path / "audio", np.int16) as w:
        for i in range(40):
            w.append(f"c/{i:02d}", (rng.standard_normal(int(rng.integers(8000, 24000))) * 3000).astype(np.int16))
    features_shard(tmp_path / "audio", tmp_path / "one", FeatureSettings(pad_ms=30))
    features_shard(tmp_path / "audio", tmp_path / "many", FeatureSettings(pad_ms=30, batch_mb=1))
    for name in ("data.bin", "offsets.bin", "lengths.bin", "ids.txt"):
        if (tmp_path / "one" / name).exists():
            assert (tmp_path / "many" / name).read_bytes() == (tmp_path / "one" / name).read_bytes()
    audio = RaggedStore(tmp_path / "audio")
    feats = RaggedStore(tmp_path / "many")
    for cid in ("c/00", "c/39"):
        x = np.concatenate([np.zeros(480, np.int16), audio[cid], np.zeros(480, np.int16)])
        np.testing.assert_array_equal(feats[cid], quantise(direct_frontend(x)))


def test_numba_kernel_starts_without_scipy_and_leaves_it_importable():
    """numba's start-up probes SciPy's BLAS (0.2 CPU s a process); the numba kernel answers
    it "no" (it uses no BLAS): SciPy is not imported by the features, imports normally
    after, and the codes are the reference's."""
    code = (
        "import sys, numpy as np\n"
        "from wakeprep.features import micro_features_u16, reference_u16\n"
        "x = (np.random.default_rng(1).standard_normal(8000) * 2000).astype(np.int16)\n"
        "codes = micro_features_u16(x)\n"
        "assert 'numba' in sys.modules\n"
        "assert 'scipy' not in sys.modules, 'the CPU frontend imported SciPy'\n"
        "import scipy.linalg\n"
        "assert scipy.linalg.cython_blas is not None\n"
        "assert np.array_equal(codes, reference_u16(x))\n"
    )
    proc = _python(code, WAKEPREP_CPU_KERNEL="numba")
    assert proc.returncode == 0, proc.stderr


MIDDLE_BIN_FRAMES = Path(__file__).parent / "data" / "fft_bin128_frames.npy"


def _middle_bin_clips():
    """17 clips of 481 samples (one frame each) whose 256-point complex FFT has an imaginary
    part of exactly +-16384 at bin 128, the real split's middle bin, where halving the
    negated value rounds differently from negating the half. Found by searching 320,000
    4 kHz frames shaped against the Hann window (seed 2) with the numba kernel's FFT steps."""
    return list(np.load(MIDDLE_BIN_FRAMES))


def test_middle_bin_of_the_real_split(kernel):
    for clip in _middle_bin_clips():
        np.testing.assert_array_equal(micro_features_u16(clip), reference_u16(clip))


def test_cuda_source_middle_bin_of_the_real_split(cuda_source_on_cpu):
    clips = _middle_bin_clips()
    x, offsets = batch(clips)
    codes, fo = cuda_source_on_cpu(x, offsets.astype(np.int64))
    np.testing.assert_array_equal(codes, np.concatenate([reference_u16(c) for c in clips]))
