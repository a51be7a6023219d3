"""SpecAugment (rule augment): mask semantics on the CPU path, GPU == CPU bytes on a GPU.

The CPU tests run everywhere. Tests marked ``gpu`` need CuPy and a usable CUDA device
and skip cleanly without them; run them on a GPU machine with ``pytest -m gpu``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import REPO
from wakeprep.augment import (
    ALGORITHM,
    AugmentParams,
    AugmentSettings,
    NoGpuError,
    augment_batch_cpu,
    augment_store,
    chunk_table,
    draw_masks,
    gpu_status,
    mask_code,
    plan_batches,
)
from wakeprep.store import RaggedStore, RaggedWriter, StoreError

GPU_OK, GPU_WHY = gpu_status()
needs_gpu = pytest.mark.skipif(not GPU_OK, reason=f"no usable GPU: {GPU_WHY}")

PARAMS = dict(copies=3, time_masks=2, time_mask_max=12, freq_masks=2, freq_mask_max=7, mask_value=0.0, seed=11)


def params(**kw) -> AugmentParams:
    p = dict(PARAMS, **kw)
    mv = p.pop("mask_value")
    return AugmentParams(fill=mask_code(mv), **p)


def random_lengths(n: int, seed: int, high: int = 200) -> np.ndarray:
    """Clip lengths with the awkward cases first: empty, 1 frame, shorter than a mask."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, high, size=n)
    lengths[:6] = [0, 1, 5, 0, 11, 33][: min(6, n)]
    return lengths.astype(np.int64)


def random_batch(lengths, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes in 1..3000, so the default mask code 0 never occurs unmasked."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    data = np.random.default_rng(seed).integers(1, 3000, size=(int(offsets[-1]), 40), dtype=np.uint16)
    return data, offsets


def make_store(path: Path, lengths, seed: int = 0) -> Path:
    data, offsets = random_batch(lengths, seed)
    with RaggedWriter(path, np.uint16, (40,), attrs={"label": "positive"}) as w:
        for i in range(len(lengths)):
            w.append(f"corpus/clip{i:05d}", data[offsets[i] : offsets[i + 1]])
    return path


def reference(data, offsets, p: AugmentParams, clip_base: int = 0) -> np.ndarray:
    """One clip and one mask at a time, straight from the drawn masks."""
    lengths = np.diff(offsets)
    m = draw_masks(clip_base + np.arange(len(lengths)), lengths, p)
    out = []
    for i, n in enumerate(lengths):
        for c in range(p.copies):
            x = data[offsets[i] : offsets[i + 1]].copy()
            for j in range(p.time_masks):
                s = m.time_start[i, c, j]
                x[s : s + m.time_size[i, c, j]] = p.fill
            for j in range(p.freq_masks):
                s = m.freq_start[i, c, j]
                x[:, s : s + m.freq_size[i, c, j]] = p.fill
            out.append(x)
    return np.concatenate(out) if out else np.zeros((0, 40), np.uint16)


def store_bytes(folder: Path) -> dict[str, bytes]:
    """Every file of every part, by relative path (meta.json included)."""
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.glob("part-*/*"))}


def concat_parts(folder: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    ids, lengths, data = [], [], []
    for part in sorted(folder.glob("part-*")):
        s = RaggedStore(part)
        ids += s.ids
        lengths.append(s.lengths)
        data.append(np.asarray(s.data))
    return ids, np.concatenate(lengths), np.concatenate(data)


def run(store, out, **kw):
    args = dict(PARAMS, device="cpu")
    args.update(kw)
    return augment_store(store, out, AugmentSettings(**args))


# --------------------------------------------------------------------------- masks


def test_mask_counts_and_sizes_within_bounds():
    p = params(copies=4, time_masks=3, time_mask_max=20, freq_masks=2, freq_mask_max=8)
    lengths = random_lengths(3000, seed=1, high=300)
    m = draw_masks(np.arange(3000), lengths, p)
    assert m.time_start.shape == m.time_size.shape == (3000, 4, 3)
    assert m.freq_start.shape == m.freq_size.shape == (3000, 4, 2)
    L = lengths[:, None, None]
    assert (m.time_size >= 0).all() and (m.time_size <= 20).all()
    assert (m.time_size <= L).all(), "time masks are clamped to the clip"
    assert (m.time_start >= 0).all() and (m.time_start + m.time_size <= L).all()
    assert (m.freq_size >= 0).all() and (m.freq_size <= 8).all()
    assert (m.freq_start >= 0).all() and (m.freq_start + m.freq_size <= 40).all()
    assert (m.time_size[lengths == 0] == 0).all() and (m.time_start[lengths == 0] == 0).all()
    # uniform draws: every size 0..max occurs, and starts reach both ends of [0, n - size]
    long = lengths >= 40
    assert set(np.unique(m.time_size[long])) == set(range(21))
    assert set(np.unique(m.freq_size)) == set(range(9))
    assert (m.freq_start == 0).any() and (m.freq_start + m.freq_size == 40).any()
    assert abs(m.time_size[long].mean() - 10) < 0.5 and abs(m.freq_size.mean() - 4) < 0.2
    # short clips: sizes are clamped, never beyond the clip
    short = (lengths > 0) & (lengths < 20)
    assert short.any() and (m.time_size[short] <= lengths[short][:, None, None]).all()


def test_masks_are_independent_per_clip_and_copy():
    p = params(copies=4)
    m = draw_masks(np.arange(500), np.full(500, 150), p)
    key = np.concatenate([m.time_start, m.time_size, m.freq_start, m.freq_size], axis=2).reshape(2000, -1)
    assert len({tuple(r) for r in key}) > 1990, "each clip and copy draws its own masks"
    other = draw_masks(np.arange(500), np.full(500, 150), params(copies=4, seed=12))
    assert (other.time_start != m.time_start).mean() > 0.9


def test_masks_depend_on_global_clip_index_not_batch():
    p = params()
    lengths = random_lengths(50, seed=2)
    whole = draw_masks(np.arange(50), lengths, p)
    tail = draw_masks(np.arange(20, 50), lengths[20:], p)
    np.testing.assert_array_equal(tail.time_start, whole.time_start[20:])
    np.testing.assert_array_equal(tail.freq_size, whole.freq_size[20:])


def test_mask_code():
    assert mask_code(0) == 0
    assert mask_code(1.0) == 26  # 25.6 rounds to 26
    assert mask_code(0.5) == 13
    assert mask_code(2559) == 65510
    with pytest.raises(ValueError, match="outside uint16"):
        mask_code(2560)


# --------------------------------------------------------------------------- batches


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"copies": 1, "time_masks": 0},
        {"freq_masks": 0, "time_mask_max": 500},  # masks longer than most clips
        {"freq_mask_max": 40, "time_masks": 5, "mask_value": 1.0},
        {"copies": 2, "time_mask_max": 0, "freq_mask_max": 0},  # sizes all 0: a plain copy
    ],
)
def test_batch_matches_per_clip_reference(kw):
    p = params(**kw)
    lengths = random_lengths(120, seed=3)
    data, offsets = random_batch(lengths, seed=3)
    out = augment_batch_cpu(data, offsets, p)
    assert out.dtype == np.uint16 and out.shape == (p.copies * data.shape[0], 40)
    np.testing.assert_array_equal(out, reference(data, offsets, p))


def test_masked_cells_are_inside_masks_and_the_rest_untouched():
    p = params(copies=2, time_masks=2, time_mask_max=15, freq_masks=2, freq_mask_max=6)
    lengths = random_lengths(200, seed=4)
    data, offsets = random_batch(lengths, seed=4)
    out = augment_batch_cpu(data, offsets, p)
    m = draw_masks(np.arange(200), lengths, p)
    pos, masked_any = 0, 0
    for i, n in enumerate(lengths):
        clip = data[offsets[i] : offsets[i + 1]]
        for c in range(2):
            got = out[pos : pos + n]
            pos += n
            expect = np.zeros((n, 40), dtype=bool)
            for j in range(2):
                expect[m.time_start[i, c, j] : m.time_start[i, c, j] + m.time_size[i, c, j], :] = True
                expect[:, m.freq_start[i, c, j] : m.freq_start[i, c, j] + m.freq_size[i, c, j]] = True
            changed = got != clip
            np.testing.assert_array_equal(changed, expect)  # input has no zeros: changed == masked
            assert (got[expect] == 0).all()
            np.testing.assert_array_equal(got[~expect], clip[~expect])
            # per copy: at most time_masks * max whole frames, freq_masks * max whole bins
            rows_full = int(expect.all(axis=1).sum())
            assert rows_full <= 2 * 15
            if rows_full < n:
                assert expect.all(axis=0).sum() <= 2 * 6
            masked_any += int(expect.any())
    assert pos == out.shape[0]
    assert masked_any > 300, "masks are actually applied"


def test_batch_split_does_not_change_output():
    p = params()
    lengths = random_lengths(300, seed=5)
    data, offsets = random_batch(lengths, seed=5)
    whole = augment_batch_cpu(data, offsets, p)
    parts = [
        augment_batch_cpu(data[offsets[a] : offsets[b]], offsets[a : b + 1], p, clip_base=a)
        for a, b in [(0, 1), (1, 4), (4, 150), (150, 151), (151, 300)]
    ]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_plan_and_chunk_table():
    offsets = np.concatenate([[0], np.cumsum([0, 70, 5, 0, 32, 200])])
    assert plan_batches(offsets, 2, 0) == [(0, 2), (2, 4), (4, 6)]
    assert plan_batches(offsets, 0, 75) == [(0, 4), (4, 5), (5, 6)]  # a long clip goes alone
    assert plan_batches(offsets[:1], 0, 75) == []
    t = chunk_table(offsets)
    assert t.dtype == np.int32
    assert t.tolist() == [[1, 0], [1, 32], [1, 64], [2, 0], [4, 0]] + [[5, 32 * k] for k in range(7)]


def test_bad_parameters_say_which_key():
    data, offsets = random_batch(np.array([5, 6]), seed=0)
    with pytest.raises(ValueError, match="augment.freq_mask_max"):
        augment_batch_cpu(data, offsets, params(freq_mask_max=41))
    with pytest.raises(ValueError, match="augment.copies"):
        augment_batch_cpu(data, offsets, params(copies=0))
    with pytest.raises(ValueError, match="uint16"):
        augment_batch_cpu(data.astype(np.float32), offsets, params())


def test_settings_from_config_section():
    s = AugmentSettings.from_config({"enabled": True, "copies": 3, "seed": None, "device": "cpu"}, seed=7)
    assert (s.copies, s.seed, s.device, s.time_mask_max, s.shard_items) == (3, 7, "cpu", 10, 100_000)
    assert AugmentSettings.from_config({"seed": 5}, seed=7).seed == 5
    assert s.params == params(copies=3, time_mask_max=10, freq_mask_max=5, seed=7)
    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())["properties"]["augment"]["properties"]
    defaults = AugmentSettings().to_dict()
    assert {k: v["default"] for k, v in schema.items() if k not in ("enabled", "seed")} == {
        k: v for k, v in defaults.items() if k != "seed"}, "the dataclass's defaults are the schema's"


@pytest.mark.parametrize(
    "section, match",
    [
        ({"device": "gpu"}, "augment.device"),
        ({"copies": 0}, "augment.copies"),
        ({"copies": 1.5}, "augment.copies must be an integer"),
        ({"shard_items": 0}, "augment.shard_items"),
        ({"batch_items": -1}, "augment.batch_items"),
        ({"mask_value": 3000}, "augment.mask_value"),
        ({"seed": 2**64}, "augment.seed"),
        ({"copis": 2}, "augment.copis is not a setting"),
    ],
)
def test_settings_name_the_bad_key(section, match):
    with pytest.raises(ValueError, match=match):
        AugmentSettings.from_config(section, seed=1)


# --------------------------------------------------------------------------- stores


def test_store_layout_ids_and_report(tmp_path):
    lengths = random_lengths(40, seed=6)
    store = make_store(tmp_path / "in", lengths)
    report = run(store, tmp_path / "out", shard_items=25)
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["augment.json", "part-0000", "part-0001", "part-0002", "part-0003", "part-0004"]
    assert not list(tmp_path.glob(".*")), "no temporary folder left beside the output"
    saved = json.loads((out / "augment.json").read_text())
    assert saved == report
    assert saved["seed"] == 11 and saved["copies"] == 3 and saved["time_mask_max"] == 12
    assert saved["algorithm"] == ALGORITHM and saved["device"] == "cpu" and saved["mask_code"] == 0
    assert saved["input_clips"] == 40 and saved["output_clips"] == 120
    assert saved["output_frames"] == 3 * int(lengths.sum())
    assert [p["count"] for p in saved["parts"]] == [25, 25, 25, 25, 20]
    ids, out_lengths, data = concat_parts(out)
    src = RaggedStore(store)
    assert ids == [f"{cid}#aug{c}" for cid in src.ids for c in range(3)]
    np.testing.assert_array_equal(out_lengths, np.repeat(lengths, 3))
    np.testing.assert_array_equal(data, reference(np.asarray(src.data), src.offsets, params()))
    meta = RaggedStore(out / "part-0001").meta
    assert meta["dtype"] == "<u2" and meta["row_shape"] == [40] and meta["attrs"]["seed"] == 11


def test_seed_reproducible_and_seed_matters(tmp_path):
    store = make_store(tmp_path / "in", random_lengths(60, seed=7))
    run(store, tmp_path / "a")
    run(store, tmp_path / "b")
    run(store, tmp_path / "c", seed=12)
    a, b, c = (store_bytes(tmp_path / x) for x in "abc")
    assert a == b
    assert a["part-0000/data.bin"] != c["part-0000/data.bin"]
    assert a["part-0000/offsets.bin"] == c["part-0000/offsets.bin"]


def test_batch_size_does_not_change_output(tmp_path):
    store = make_store(tmp_path / "in", random_lengths(90, seed=8))
    outputs = []
    for k, batch_items in enumerate([0, 1, 7, 89, 1000]):
        run(store, tmp_path / f"o{k}", batch_items=batch_items, shard_items=50)
        outputs.append(store_bytes(tmp_path / f"o{k}"))
    assert all(o == outputs[0] for o in outputs[1:])
    # shard size changes only where items are cut, not what they hold
    run(store, tmp_path / "one", shard_items=10**6)
    assert concat_parts(tmp_path / "one")[0] == concat_parts(tmp_path / "o0")[0]
    np.testing.assert_array_equal(concat_parts(tmp_path / "one")[2], concat_parts(tmp_path / "o0")[2])


def test_rerun_replaces_output_and_empty_store(tmp_path):
    store = make_store(tmp_path / "in", random_lengths(10, seed=9))
    out = tmp_path / "out"
    out.mkdir()  # as Snakemake may leave it
    (out / "stale").write_text("x")
    run(store, out)
    assert not (out / "stale").exists() and (out / "part-0000" / "meta.json").is_file()
    empty = make_store(tmp_path / "empty", np.zeros(0, np.int64))
    report = run(empty, tmp_path / "eout")
    assert report["output_clips"] == 0 and len(RaggedStore(tmp_path / "eout" / "part-0000")) == 0
    zeros = make_store(tmp_path / "zeros", np.zeros(3, np.int64))
    run(zeros, tmp_path / "zout")
    assert RaggedStore(tmp_path / "zout" / "part-0000").ids[-1] == "corpus/clip00002#aug2"


def test_mask_value_is_converted_to_a_code(tmp_path):
    store = make_store(tmp_path / "in", np.full(30, 100))
    run(store, tmp_path / "out", mask_value=1.0, freq_masks=0, time_mask_max=100)
    _, _, data = concat_parts(tmp_path / "out")
    src = np.asarray(RaggedStore(store).data)
    masked = np.tile(src.reshape(30, 1, 100, 40), (1, 3, 1, 1)).reshape(-1, 40) != data
    assert masked.any() and (data[masked] == 26).all()


def test_wrong_input_and_device(tmp_path):
    bad = tmp_path / "audio"
    with RaggedWriter(bad, np.int16) as w:
        w.append("a", np.zeros(10, np.int16))
    with pytest.raises(StoreError, match="uint16 feature codes"):
        run(bad, tmp_path / "o1")
    store = make_store(tmp_path / "in", [5])
    with pytest.raises(ValueError, match="augment.device"):
        run(store, tmp_path / "o2", device="gpu")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


@pytest.mark.skipif(GPU_OK, reason="a GPU is usable here")
def test_cuda_without_gpu_fails_clearly(tmp_path):
    store = make_store(tmp_path / "in", [5, 6])
    with pytest.raises(RuntimeError, match="no usable GPU was found") as err:
        run(store, tmp_path / "out", device="cuda")
    assert isinstance(err.value, NoGpuError)
    assert "augment.device: cpu" in str(err.value) and "config.yaml" in str(err.value)
    assert not (tmp_path / "out").exists(), "nothing written, no CPU fallback"


# --------------------------------------------------------------------------- the rule


def snakemake_run(tmp_path: Path, lengths, device: str, **augment) -> Path:
    """Run rule augment through the real Snakemake CLI, with a Snakefile that includes
    rules/augment.smk alone (the input store stands in for rule assemble's output)."""
    work = tmp_path / "work"
    make_store(work / "results" / "mmap" / "train" / "positive" / "features", lengths, seed=3)
    cfg = {
        "seed": 11,
        "corpora": [{"name": "x", "path": "x", "label": "positive"}],
        "augment": dict(device=device, copies=3, time_masks=2, time_mask_max=12, freq_masks=2, freq_mask_max=7,
                        mask_value=0, **augment),
    }
    (work / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    (work / "Snakefile").write_text(
        "from snakemake.utils import validate\n"
        'configfile: "config.yaml"\n'
        f'validate(config, schema="{REPO / "schemas" / "config.schema.yaml"}")\n'
        'RESULTS = "results"\n'
        "def canonical(value):\n"  # rules/common.smk's
        "    import json\n"
        "    return json.loads(json.dumps(value, sort_keys=True))\n"
        "def train_features(label):\n"  # rules/common.smk's: the training windows, here the assembled store
        '    return f"results/mmap/train/{label}"\n'
        f'include: "{REPO / "rules" / "augment.smk"}"\n'
        "rule all:\n"
        '    input: "results/augmented/positive"\n'
    )
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(work / "Snakefile"), "-d", str(work), "--cores", "1"]
    proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300, env=env)
    log = work / "results" / "logs" / "augment" / "positive.log"
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n{log.read_text() if log.exists() else ''}"
    assert (work / "results" / "benchmarks" / "augment" / "positive.tsv").is_file()
    return work


@pytest.mark.slow
def test_rule_runs_end_to_end_on_cpu(tmp_path):
    pytest.importorskip("snakemake")
    lengths = random_lengths(30, seed=10)
    work = snakemake_run(tmp_path, lengths, "cpu", shard_items=40, batch_items=4)
    out = work / "results" / "augmented" / "positive"
    report = json.loads((out / "augment.json").read_text())
    assert report["seed"] == 11 and report["device"] == "cpu" and len(report["parts"]) == 3
    run(work / "results" / "mmap" / "train" / "positive" / "features", tmp_path / "direct", shard_items=40)
    assert store_bytes(out) == store_bytes(tmp_path / "direct")


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("seed", [0, 11, 2**63 + 12345])
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"copies": 1, "time_mask_max": 400, "freq_mask_max": 40, "mask_value": 3.5},
        {"copies": 5, "time_masks": 6, "freq_masks": 0},
        {"time_masks": 0, "freq_masks": 4, "freq_mask_max": 13},
    ],
)
def test_gpu_kernel_equals_cpu_bytes(seed, kw):
    cupy = pytest.importorskip("cupy")
    from wakeprep.augment import augment_batch_gpu

    p = params(seed=seed, **kw)
    lengths = random_lengths(700, seed=seed % 1000, high=400)
    lengths[10] = 5000  # a long clip spans many chunks
    data, offsets = random_batch(lengths, seed=1)
    cpu = augment_batch_cpu(data, offsets, p, clip_base=17)
    gpu = cupy.asnumpy(augment_batch_gpu(data, offsets, p, clip_base=17))
    assert gpu.dtype == np.uint16 and gpu.shape == cpu.shape
    assert gpu.tobytes() == cpu.tobytes()


@pytest.mark.gpu
@needs_gpu
def test_gpu_large_batch_equals_cpu_bytes():
    cupy = pytest.importorskip("cupy")
    from wakeprep.augment import augment_batch_gpu

    p = params(copies=2, seed=99)
    lengths = np.random.default_rng(5).integers(0, 300, size=40_000)  # ~6 M frames, 480 MB in
    data, offsets = random_batch(lengths, seed=5)
    gpu = cupy.asnumpy(augment_batch_gpu(data, offsets, p))
    for a, b in [(0, 1000), (19_000, 21_000), (38_500, 40_000)]:  # CPU on slices: global index kept
        cpu = augment_batch_cpu(data[offsets[a] : offsets[b]], offsets[a : b + 1], p, clip_base=a)
        np.testing.assert_array_equal(gpu[2 * offsets[a] : 2 * offsets[b]], cpu)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("batch_items", [0, 1, 13, 5000])
def test_gpu_store_equals_cpu_store(tmp_path, batch_items):
    lengths = random_lengths(900, seed=12, high=300)
    store = make_store(tmp_path / "in", lengths)
    run(store, tmp_path / "cpu", shard_items=1000)
    report = run(store, tmp_path / "gpu", device="cuda", batch_items=batch_items, shard_items=1000)
    assert report["device"] == "cuda" and report["device_name"].startswith("cuda:")
    assert store_bytes(tmp_path / "gpu") == store_bytes(tmp_path / "cpu")


@pytest.mark.gpu
@needs_gpu
@pytest.mark.slow
def test_rule_runs_end_to_end_on_gpu(tmp_path):
    pytest.importorskip("snakemake")
    lengths = random_lengths(2000, seed=13, high=300)
    work = snakemake_run(tmp_path, lengths, "cuda", shard_items=1500)
    out = work / "results" / "augmented" / "positive"
    report = json.loads((out / "augment.json").read_text())
    assert report["device"] == "cuda" and report["device_name"].startswith("cuda:")
    assert [p["count"] for p in report["parts"]] == [1500, 1500, 1500, 1500]
    run(work / "results" / "mmap" / "train" / "positive" / "features", tmp_path / "cpu", shard_items=1500)
    assert store_bytes(out) == store_bytes(tmp_path / "cpu")
