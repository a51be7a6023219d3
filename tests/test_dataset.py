"""wakeprep.dataset: padded, weighted, seeded batches from the feature stores.

CPU tests run everywhere. Tests marked ``gpu`` need CuPy and a usable CUDA device and skip
cleanly without them (``pytest -m gpu tests/test_dataset.py`` on a GPU machine).
"""

from __future__ import annotations

import pickle
import sys
import tracemalloc
import types
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from wakeprep.augment import NoGpuError, augment_batch_cpu, gpu_status
from wakeprep.dataset import FeatureSet, SpecAugment, WakeWordDataset
from wakeprep.dataset.core import permutation
from wakeprep.features import dequantise
from wakeprep.store import RaggedStore, RaggedWriter, StoreError

GPU_OK, GPU_WHY = gpu_status()
needs_gpu = pytest.mark.skipif(not GPU_OK, reason=f"no usable GPU: {GPU_WHY}")
T = 150


def make_store(path: Path, lengths, seed=0, prefix=None) -> Path:
    """A features store whose clip ``i`` has ``lengths[i]`` frames of random codes (never 0,
    so padding is visible)."""
    rng = np.random.default_rng(seed)
    prefix = prefix or path.name
    with RaggedWriter(path, np.uint16, (40,)) as w:
        for i, n in enumerate(lengths):
            w.append(f"{prefix}/clip{i:04d}", rng.integers(1, 2000, size=(int(n), 40), dtype=np.uint16))
    return path


def expected_window(store: RaggedStore, clip_id: str, start: int) -> np.ndarray:
    """What a window starting at frame ``start`` of the clip must hold (zeros before the clip)."""
    x = np.asarray(store[clip_id])
    out = np.zeros((T, 40), dtype=np.uint16)
    a = max(start, 0)
    out[a - start : a - start + len(x[a : start + T])] = x[a : start + T]
    return dequantise(out)


def check_batch_values(batch, stores: dict):
    """Every example equals the store's frames at ``starts`` (padding zero), exactly."""
    f = np.asarray(batch.features)
    assert f.dtype == np.float32 and f.shape == (len(batch.clip_ids), T, 40)
    for i, (cid, s) in enumerate(zip(batch.clip_ids, batch.starts)):
        store = stores[cid.split("/")[0]]
        np.testing.assert_array_equal(f[i], expected_window(store, cid, int(s)), err_msg=f"{cid} @ {s}")


# --------------------------------------------------------------------------- strategies


SHORT, EQUAL, LONG = 97, T, 233  # shorter than, equal to, longer than the target


@pytest.mark.parametrize("strategy", ["random", "truncate_start", "truncate_end", "split"])
def test_every_strategy_on_short_equal_and_long_clips(tmp_path, strategy):
    lengths = [SHORT, EQUAL, LONG, SHORT + 1, LONG + 40, 5]
    path = make_store(tmp_path / "s", lengths)
    store = RaggedStore(path)
    ds = WakeWordDataset([FeatureSet("s", [path], truncation_strategy=strategy)], T, batch_size=4, split_stride=10, seed=5)
    seen = []
    for b in ds.eval_batches():
        check_batch_values(b, {"s": store})
        seen += list(zip(b.clip_ids, b.starts.tolist()))
    starts = {}
    for cid, s in seen:
        starts.setdefault(cid, []).append(s)
    for i, n in enumerate(lengths):
        cid = f"s/clip{i:04d}"
        got = starts[cid]
        if n <= T:  # padded at the start, the clip ends the window; one window even for split
            assert got == [n - T], (strategy, n, got)
        elif strategy == "truncate_start":
            assert got == [n - T]
        elif strategy == "truncate_end":
            assert got == [0]
        elif strategy == "random":
            assert len(got) == 1 and 0 <= got[0] <= n - T
        else:  # split: every full window, every split_stride frames
            assert got == list(range(0, n - T + 1, 10)), (n, got)
    # training batches use the same windows
    for b in ds.batches(epoch=3):
        check_batch_values(b, {"s": store})


def test_random_crop_covers_the_clip_and_changes_with_the_epoch(tmp_path):
    path = make_store(tmp_path / "s", [T + 20])
    ds = WakeWordDataset([FeatureSet("s", [path])], T, batch_size=64, batches_per_epoch=20, seed=1)
    starts = np.concatenate([b.starts for b in ds.batches(0)])
    assert starts.min() == 0 and starts.max() == 20  # both ends reachable (inclusive range)
    assert len(set(starts.tolist())) == 21
    first = [b.starts[0] for e in range(8) for b in list(ds.eval_batches(epoch=e))[:1]]
    assert len(set(first)) > 1


def test_uint16_output_is_the_stored_codes(tmp_path):
    path = make_store(tmp_path / "s", [SHORT, LONG, EQUAL])
    kw = dict(batch_size=3, seed=2)
    spec = [FeatureSet("s", [path], truncation_strategy="truncate_start")]
    codes = next(WakeWordDataset(spec, T, dtype="uint16", **kw).eval_batches())
    floats = next(WakeWordDataset(spec, T, **kw).eval_batches())
    assert codes.features.dtype == np.uint16
    np.testing.assert_array_equal(dequantise(codes.features), floats.features)


def test_several_stores_in_one_set_and_window_before_the_first_row(tmp_path):
    # the first store is shorter than T in all (its windows cannot be a strided view)
    a = make_store(tmp_path / "a", [3, 40], seed=1, prefix="a")
    b = make_store(tmp_path / "b", [SHORT, LONG, 1], seed=2, prefix="b")
    stores = {"a": RaggedStore(a), "b": RaggedStore(b)}
    ds = WakeWordDataset([FeatureSet("ab", [a, b], truncation_strategy="truncate_end")], T, batch_size=8)
    (batch,) = list(ds.eval_batches())
    assert batch.clip_ids == ["a/clip0000", "a/clip0001", "b/clip0000", "b/clip0001", "b/clip0002"]
    check_batch_values(batch, stores)


# --------------------------------------------------------------------------- weights


def test_class_proportions_match_the_sampling_weights(tmp_path):
    sets = [
        FeatureSet("pos", [make_store(tmp_path / "pos", [T] * 50, 1)], label=1.0, sampling_weight=1.0),
        FeatureSet("neg", [make_store(tmp_path / "neg", [T] * 300, 2)], sampling_weight=2.0),
        FeatureSet("bg", [make_store(tmp_path / "bg", [T + 500] * 20, 3)], sampling_weight=5.0, truncation_strategy="split"),
    ]
    ds = WakeWordDataset(sets, T, batch_size=256, batches_per_epoch=160, seed=11, dtype="uint16")
    n = ds.batch_size * ds.batches_per_epoch
    counts = Counter()
    for b in ds.batches(0):
        counts.update(b.sets.tolist())
    # tolerance: 5 binomial standard deviations (about 0.011 here)
    for i, p in enumerate([1 / 8, 2 / 8, 5 / 8]):
        tol = 5 * np.sqrt(p * (1 - p) / n)
        assert abs(counts[i] / n - p) < tol, (i, counts[i] / n, p, tol)


def test_label_weights_split_among_the_sets_of_a_label(tmp_path):
    sets = [
        FeatureSet("pos", [make_store(tmp_path / "pos", [T] * 10, 1)], label=1.0),
        FeatureSet("neg", [make_store(tmp_path / "neg", [T] * 10, 2)], sampling_weight=1.0),
        FeatureSet("hard", [make_store(tmp_path / "hard", [T] * 10, 3)], sampling_weight=3.0),
    ]
    ds = WakeWordDataset(sets, T, batch_size=512, batches_per_epoch=100, seed=3, label_weights={1: 0.5, 0: 0.5}, dtype="uint16")
    np.testing.assert_allclose(ds.probabilities, [0.5, 0.125, 0.375])
    n = 512 * 100
    counts = Counter()
    labels = Counter()
    for b in ds.batches(1):
        counts.update(b.sets.tolist())
        labels.update(b.labels.tolist())
    for i, p in enumerate([0.5, 0.125, 0.375]):
        assert abs(counts[i] / n - p) < 5 * np.sqrt(p * (1 - p) / n)
    assert set(labels) == {0.0, 1.0}
    with pytest.raises(ValueError, match=r"label_weights has no weight for label\(s\) \[0.0\]"):
        WakeWordDataset(sets, T, label_weights={1: 1.0})


def test_items_are_drawn_without_replacement_within_a_cycle(tmp_path):
    path = make_store(tmp_path / "s", [T] * 37)
    ds = WakeWordDataset([FeatureSet("s", [path])], T, batch_size=10, batches_per_epoch=37, seed=9, dtype="uint16")
    ids = [c for b in ds.batches(4) for c in b.clip_ids]
    counts = Counter(ids)
    assert len(counts) == 37 and set(counts.values()) == {10}  # 370 draws: every clip 10 times
    first = ids[:37]
    assert len(set(first)) == 37  # the first cycle is a permutation


def test_weights_and_penalties_in_the_batch(tmp_path):
    sets = [
        FeatureSet("pos", [make_store(tmp_path / "pos", [T] * 4)], label=1.0, penalty_weight=1.0),
        FeatureSet("neg", [make_store(tmp_path / "neg", [T] * 4)], penalty_weight=3.5),
    ]
    b = next(WakeWordDataset(sets, T, batch_size=64, dtype="uint16").batches())
    np.testing.assert_array_equal(b.weights, np.where(b.sets == 0, 1.0, 3.5).astype(np.float32))
    np.testing.assert_array_equal(b.labels, np.where(b.sets == 0, 1.0, 0.0).astype(np.float32))
    assert b.labels.dtype == np.float32 and b.weights.dtype == np.float32


# --------------------------------------------------------------------------- determinism


def _dataset(tmp_path, **kw):
    sets = [
        FeatureSet("pos", [make_store(tmp_path / "pos", np.arange(60) * 3 + 90, 1)], label=1.0, truncation_strategy="truncate_start"),
        FeatureSet("neg", [make_store(tmp_path / "neg", np.arange(200) + 100, 2)], sampling_weight=2.0),
        FeatureSet("bg", [make_store(tmp_path / "bg", [1000, 620, 40], 3)], truncation_strategy="split"),
    ]
    return WakeWordDataset(sets, T, batch_size=16, seed=kw.pop("seed", 7), **kw)


def _signature(batches):
    return [(tuple(b.clip_ids), b.starts.tobytes(), np.asarray(b.features).tobytes()) for b in batches]


def test_same_seed_and_epoch_same_batches_other_epoch_other_order(tmp_path):
    ds = _dataset(tmp_path)
    a = _signature(ds.batches(epoch=2))
    b = _signature(_dataset(tmp_path / "again").batches(epoch=2))  # same content, new stores
    assert a == b and len(a) == ds.batches_per_epoch
    c = _signature(ds.batches(epoch=3))
    assert [x[0] for x in a] != [x[0] for x in c]
    d = _signature(_dataset(tmp_path / "seed", seed=8).batches(epoch=2))
    assert [x[0] for x in a] != [x[0] for x in d]
    # the order of calls does not matter: an epoch is a pure function of (seed, epoch)
    assert _signature(ds.batches(epoch=2)) == a


def test_parts_are_disjoint_and_make_the_epoch(tmp_path):
    ds = _dataset(tmp_path)
    whole = _signature(ds.batches(epoch=1))
    parts = [list(ds.batches(epoch=1, part=p, parts=3)) for p in range(3)]
    assert [b.index for b in parts[1]] == list(range(1, ds.batches_per_epoch, 3))
    merged = sorted((b.index, s) for p in parts for b, s in zip(p, _signature(p)))
    assert [s for _, s in merged] == whole
    with pytest.raises(ValueError, match="part must be"):
        next(ds.batches(part=3, parts=3))


def test_evaluation_reads_every_item_once(tmp_path):
    ds = _dataset(tmp_path)
    for shuffle in (False, True):
        items = [(c, s) for b in ds.eval_batches(shuffle=shuffle) for c, s in zip(b.clip_ids, b.starts.tolist())]
        assert len(items) == len(set(items)) == ds.items
        clips = {c for c, _ in items}
        assert len(clips) == 60 + 200 + 3
    bg_windows = [s for c, s in items if c.startswith("bg/")]
    assert len(bg_windows) == (1000 - T) // 10 + 1 + (620 - T) // 10 + 1 + 1
    sizes = [len(b) for b in ds.eval_batches()]
    assert sizes[:-1] == [16] * (len(sizes) - 1) and 0 < sizes[-1] <= 16
    assert _signature(ds.eval_batches()) == _signature(ds.eval_batches())


def test_permutation_is_a_permutation():
    p = permutation(np.uint64(12345), 1000)
    assert sorted(p.tolist()) == list(range(1000))
    assert not np.array_equal(p, np.arange(1000))


# --------------------------------------------------------------------------- memory


def test_memory_is_flat_in_the_corpus_size(tmp_path):
    path = make_store(tmp_path / "big", [400] * 2000)  # 64 MB of codes
    data_bytes = (tmp_path / "big" / "data.bin").stat().st_size
    tracemalloc.start()
    try:
        ds = WakeWordDataset([FeatureSet("big", [path])], T, batch_size=64, batches_per_epoch=40)
        for _ in ds.batches(0):
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    batch_bytes = 64 * T * 40 * 4
    assert peak < 6 * batch_bytes + 2_000_000, (peak, data_bytes)
    assert peak < data_bytes / 10
    src = ds.sets[0].sources[0]
    assert np.shares_memory(src.windows, src.store.data)  # a view of the memory map


def test_pickling_reopens_the_stores_instead_of_copying_them(tmp_path):
    ds = _dataset(tmp_path)
    blob = pickle.dumps(ds)
    assert len(blob) < 5000
    again = pickle.loads(blob)
    assert _signature(again.batches(1)) == _signature(ds.batches(1))


# --------------------------------------------------------------------------- SpecAugment on the fly


def test_specaugment_on_the_fly_cpu(tmp_path):
    aug = SpecAugment(time_masks=2, time_mask_max=20, freq_masks=2, freq_mask_max=8, seed=4)
    plain = _dataset(tmp_path, dtype="uint16")
    augmented = _dataset(tmp_path / "b", augment=aug)
    codes = list(plain.batches(1))
    feats = list(augmented.batches(1))
    assert [b.clip_ids for b in codes] == [b.clip_ids for b in feats]
    changed = 0
    for c, f in zip(codes, feats):
        B = len(c)
        want = augment_batch_cpu(c.features.reshape(B * T, 40), np.arange(B + 1) * T, aug.params(1), c.first)
        np.testing.assert_array_equal(f.features, dequantise(want.reshape(B, T, 40)))
        changed += int((f.features == 0).sum() > (c.features == 0).sum())
    assert changed > len(codes) // 2
    # other epoch, other masks; evaluation passes are not augmented
    e2 = next(augmented.batches(2)).features
    assert not np.array_equal(e2, next(_dataset(tmp_path / "c", augment=aug).batches(1)).features)
    ev = next(augmented.eval_batches())
    np.testing.assert_array_equal(ev.features, dequantise(next(plain.eval_batches()).features))


def test_specaugment_from_config():
    aug = SpecAugment.from_config({"time_masks": 1, "time_mask_max": 4, "freq_masks": 3, "freq_mask_max": 2,
                                   "mask_value": 0.5, "seed": None, "device": "cpu", "copies": 2}, seed=9)
    assert (aug.time_masks, aug.time_mask_max, aug.freq_masks, aug.freq_mask_max, aug.seed) == (1, 4, 3, 2, 9)
    assert aug.params(0).fill == 13  # round(0.5 * 25.6)
    with pytest.raises(ValueError, match="freq_mask_max must be at most the 40 bins"):
        SpecAugment(freq_mask_max=41)
    with pytest.raises(ValueError, match="needs a \\[B, frames, bins\\] batch of uint16 codes, got float32"):
        aug.apply(np.zeros((2, T, 40), np.float32))


@pytest.mark.skipif(GPU_OK, reason="a GPU is usable here")
def test_cuda_without_gpu_fails_clearly():
    with pytest.raises(NoGpuError, match="no usable GPU"):
        SpecAugment(device="cuda")


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("dequant", [True, False])
def test_gpu_specaugment_equals_cpu_bytes(dequant):
    cupy = pytest.importorskip("cupy")
    rng = np.random.default_rng(3)
    codes = rng.integers(1, 3000, size=(257, T, 40), dtype=np.uint16)
    kw = dict(time_masks=3, time_mask_max=40, freq_masks=2, freq_mask_max=10, mask_value=0.25, seed=77)
    cpu = SpecAugment(**kw, device="cpu").apply(codes, epoch=5, first=1000, dequantise=dequant)
    gpu_aug = SpecAugment(**kw, device="cuda")
    for src in (codes, cupy.asarray(codes)):
        gpu = gpu_aug.apply(src, epoch=5, first=1000, dequantise=dequant)
        assert isinstance(gpu, cupy.ndarray)
        out = cupy.asnumpy(gpu)
        assert out.dtype == cpu.dtype and out.shape == cpu.shape
        assert out.tobytes() == cpu.tobytes()


@pytest.mark.gpu
@needs_gpu
def test_gpu_dataset_batches_equal_cpu_batches(tmp_path):
    cupy = pytest.importorskip("cupy")
    kw = dict(time_masks=2, time_mask_max=15, freq_masks=2, freq_mask_max=6, seed=1)
    cpu = _dataset(tmp_path, augment=SpecAugment(**kw, device="cpu"))
    gpu = _dataset(tmp_path / "g", augment=SpecAugment(**kw, device="cuda"))
    for a, b in zip(cpu.batches(3), gpu.batches(3)):
        assert isinstance(b.features, cupy.ndarray)
        assert a.clip_ids == b.clip_ids
        assert cupy.asnumpy(b.features).tobytes() == a.features.tobytes()


# --------------------------------------------------------------------------- results layout, errors


def make_results(root: Path) -> Path:
    for split, n in (("train", 30), ("validation", 6)):
        for label, lo in (("positive", 90), ("negative", 120), ("background", 600)):
            make_store(root / "mmap" / split / label / "features", np.arange(n) + lo, seed=len(label), prefix=label)
    return root


def test_from_results(tmp_path):
    res = make_results(tmp_path / "results")
    ds = WakeWordDataset.from_results(res, frames=T, batch_size=32, sampling_weights={"positive": 2.0},
                                      truncation_strategy={"background": "split"}, seed=1)
    names = {s.spec.name: s.spec for s in ds.sets}
    assert sorted(names) == ["background", "negative", "positive"]
    assert names["positive"].label == 1.0 and names["negative"].label == 0.0
    assert names["positive"].truncation_strategy == "truncate_start"
    assert names["negative"].truncation_strategy == "random" and names["background"].truncation_strategy == "split"
    np.testing.assert_allclose(ds.probabilities, [0.25, 0.25, 0.5])  # sorted: background, negative, positive
    val = WakeWordDataset.from_results(res, split="validation", frames=T, labels=["positive"])
    assert val.items == 6
    stores = {lab: RaggedStore(res / "mmap" / "train" / lab / "features") for lab in names}
    for b in list(ds.batches(0))[:3]:
        check_batch_values(b, stores)
    assert "background" in ds.describe()


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(StoreError, match="does not exist: run the workflow first"):
        WakeWordDataset.from_results(tmp_path / "nothing", frames=T)
    with pytest.raises(ValueError, match="truncation_strategy 'none' is not one of"):
        FeatureSet("x", [tmp_path], truncation_strategy="none")
    with pytest.raises(StoreError, match=r"feature set 'x': .*missing.* is not a finished ragged store"):
        WakeWordDataset([FeatureSet("x", [tmp_path / "missing"])], T)
    with RaggedWriter(tmp_path / "audio", np.int16, ()) as w:
        w.append("a", np.zeros(10, np.int16))
    with pytest.raises(StoreError, match="expected uint16 feature codes"):
        WakeWordDataset([FeatureSet("x", [tmp_path / "audio"])], T)
    with pytest.raises(ValueError, match="frames must be an integer >= 1"):
        WakeWordDataset([FeatureSet("x", [make_store(tmp_path / "s", [5])])], 0)
    with pytest.raises(ValueError, match="sampling_weight must be a finite number"):
        FeatureSet("x", [tmp_path], sampling_weight=-1)
    empty = make_store(tmp_path / "empty", [])
    ds = WakeWordDataset([FeatureSet("e", [empty])], T)
    assert list(ds.eval_batches()) == []
    with pytest.raises(ValueError, match="no training batches"):
        next(ds.batches())


# --------------------------------------------------------------------------- adapters


def test_torch_adapter_two_workers_evaluation_reads_each_clip_once(tmp_path):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    from wakeprep.dataset import TorchBatches

    ds = _dataset(tmp_path)
    loader = DataLoader(TorchBatches(ds, evaluate=True), batch_size=None, num_workers=2)
    items = []
    for features, labels, clip_ids in loader:
        assert isinstance(features, torch.Tensor) and features.dtype == torch.float32
        assert features.shape[1:] == (T, 40) and labels.shape == (len(clip_ids),)
        items += clip_ids
    expected = [c for b in ds.eval_batches() for c in b.clip_ids]
    assert items == expected  # same order as one process
    # each clip exactly once (the split set's clips once per window)
    bg = Counter(c for c in items if c.startswith("bg/"))
    others = Counter(c for c in items if not c.startswith("bg/"))
    assert set(others.values()) == {1} and len(others) == 260
    assert sum(bg.values()) == ds.sets[2].n_items


def test_torch_adapter_training_with_workers_equals_one_process(tmp_path):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    from wakeprep.dataset import TorchBatches

    ds = _dataset(tmp_path)
    tb = TorchBatches(ds, epoch=2, weights=True)
    assert len(tb) == ds.batches_per_epoch
    got = list(DataLoader(tb, batch_size=None, num_workers=2))
    want = list(ds.batches(2))
    assert len(got) == len(want)
    for (f, lab, w, ids), b in zip(got, want):
        assert ids == b.clip_ids
        assert torch.equal(f, torch.from_numpy(b.features)) and torch.equal(w, torch.from_numpy(b.weights))
    ranks = [[ids for _, _, ids in TorchBatches(ds, epoch=2, rank=r, world_size=2)] for r in range(2)]
    assert ranks[0] + ranks[1] != [] and sorted(map(tuple, ranks[0] + ranks[1])) == sorted(tuple(b.clip_ids) for b in want)


def test_tf_adapter_without_tensorflow_says_what_to_install(tmp_path, monkeypatch):
    from wakeprep.dataset import tf_dataset

    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"needs TensorFlow .*pip install tensorflow"):
        tf_dataset(_dataset(tmp_path))


def test_tf_adapter_generator_and_signature(tmp_path, monkeypatch):
    """With a stand-in ``tensorflow`` module: the signature and what the generator yields."""
    from wakeprep.dataset import tf_dataset

    made = {}

    class Spec:
        def __init__(self, shape, dtype):
            self.shape, self.dtype = shape, dtype

    class Data:
        def apply(self, fn):
            return fn(self)

    def from_generator(gen, output_signature):
        made["gen"], made["sig"] = gen, output_signature
        return Data()

    def assert_cardinality(n):
        made["n"] = n
        return lambda data: "dataset"

    fake = types.SimpleNamespace(
        float32="float32", uint16="uint16", string="string", TensorSpec=Spec,
        data=types.SimpleNamespace(Dataset=types.SimpleNamespace(from_generator=from_generator),
                                   experimental=types.SimpleNamespace(assert_cardinality=assert_cardinality)),
    )
    monkeypatch.setitem(sys.modules, "tensorflow", fake)
    ds = _dataset(tmp_path)
    assert tf_dataset(ds, evaluate=True) == "dataset"
    assert [(s.shape, s.dtype) for s in made["sig"]] == [((None, T, 40), "float32"), ((None,), "float32"), ((None,), "string")]
    out = list(made["gen"]())
    assert len(out) == ds.eval_batches_count() == made["n"]
    f, lab, ids = out[0]
    ref = next(ds.eval_batches())
    np.testing.assert_array_equal(f, ref.features)
    assert ids.dtype == object and list(ids) == ref.clip_ids


def test_tf_adapter_with_tensorflow(tmp_path):
    tf = pytest.importorskip("tensorflow")
    from wakeprep.dataset import tf_dataset

    ds = _dataset(tmp_path)
    data = tf_dataset(ds, evaluate=True)
    got = list(data.as_numpy_iterator())
    want = list(ds.eval_batches())
    assert len(got) == len(want) == int(data.cardinality())
    for (f, lab, ids), b in zip(got, want):
        np.testing.assert_array_equal(f, b.features)
        np.testing.assert_array_equal(lab, b.labels)
        assert [x.decode() for x in ids] == b.clip_ids
    f, lab, w, ids = next(iter(tf_dataset(ds, epoch=3, weights=True)))
    ref = next(ds.batches(3))
    assert f.dtype == tf.float32 and f.shape == (16, T, 40)
    np.testing.assert_array_equal(f.numpy(), ref.features)
    np.testing.assert_array_equal(w.numpy(), ref.weights)


def test_from_results_reads_windows_where_made_and_skips_resource_labels(tmp_path):
    res = make_results(tmp_path / "results")
    make_store(res / "windows" / "train" / "positive" / "features", np.full(5, 317), seed=9, prefix="win")
    make_store(res / "mmap" / "train" / "noise" / "features", np.full(4, 300), seed=10, prefix="noise")
    ds = WakeWordDataset.from_results(res, frames=T)
    names = {s.spec.name: s.spec for s in ds.sets}
    assert sorted(names) == ["background", "negative", "positive"]
    assert names["positive"].stores == (res / "windows" / "train" / "positive" / "features",)
    assert names["negative"].stores == (res / "mmap" / "train" / "negative" / "features",)
