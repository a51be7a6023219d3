"""The dataset report: rule ``report`` on a small corpus, the run summary against the
stores and tables, ``snakemake --report`` (HTML and zip), byte-identical plots, and the
page rendered by a headless Chromium."""

import csv
import json
import shutil
import subprocess
import time
import zipfile
from collections import Counter

import numpy as np
import pytest

from helpers import make_small_corpus, run_snakemake, tone, workflow_config, write_audio
from wakeprep.report import embedding_sample, feature_examples, pca_2d, plot_embeddings, read_benchmarks
from wakeprep.store import RaggedStore, RaggedWriter
from wakeprep.table import read_table

SPLITS = ("train", "validation", "test")
LABELS = ("background", "positive")  # speech is positive, noise is background
PNG = b"\x89PNG\r\n\x1a\n"
#: Each section of the report: its category and a phrase of its caption or content.
SECTIONS = {
    "1. Overview": "clips and hours per corpus, label and split",
    "2. Clip durations": "Clip duration histograms per label",
    "3. Rejected files": "Rejected files per reason",
    "4. Speakers and split": "leakage audit summary",
    "5. Features": "Micro-frontend features of a few clips",
    "6. Run times": "read from the",
}
REPORT_FILES = [
    "summary.html", "counts.html", "counts.csv", "hours.png", "durations.png", "rejected.png",
    "rejected.html", "rejected.csv", "group_sizes.png", "leakage.html", "embeddings.png",
    "runtimes.png", "runtimes.html", "runtimes.csv", *[f"features_{l}.png" for l in LABELS],
]


@pytest.fixture(scope="module")
def reported(tmp_path_factory, have_espeak):
    """One workflow run on a small corpus with two rejected files, then the HTML report."""
    root = tmp_path_factory.mktemp("report")
    corpora = make_small_corpus(root / "corpora", n_speech=8, n_noise=3)
    (corpora["noise"] / "empty.wav").write_bytes(b"")
    write_audio(corpora["noise"] / "short.wav", tone(0.02, 16000), 16000)
    work = root / "work"
    work.mkdir()
    cfg = workflow_config(corpora, augment={"enabled": True, "device": "cpu", "copies": 2})
    proc = run_snakemake(work, config=cfg)
    t0 = time.monotonic()
    run_snakemake(work, "--report", "report.html")
    seconds = time.monotonic() - t0
    return work, cfg, proc, seconds


@pytest.mark.slow
def test_report_rule_writes_every_file(reported):
    work, _, _, _ = reported
    out = work / "results" / "report"
    for name in REPORT_FILES:
        path = out / name
        assert path.is_file() and path.stat().st_size > 0, name
        if name.endswith(".png"):
            assert path.read_bytes()[:8] == PNG, name
            assert path.stat().st_size < 200_000, f"{name} is {path.stat().st_size} bytes"
            assert b"matplotlib" not in path.read_bytes(), f"{name} records the software version"
    rejected = list(csv.DictReader(open(out / "rejected.csv", encoding="utf-8")))
    assert {r["reason"] for r in rejected} == {"empty", "too_short"}
    assert {r["source"] for r in rejected} == {"empty.wav", "short.wav"}
    assert "noise/empty" in (out / "rejected.html").read_text()


@pytest.mark.slow
def test_summary_numbers_equal_stores_and_tables(reported):
    work, _, proc, _ = reported
    res = work / "results"
    s = json.loads((res / "summary.json").read_text())
    table = list(read_table(res / "clips.tsv"))
    assert s["files"] == len(table) == 8 + 3 + 2
    assert s["ok"] == sum(r["status"] == "ok" for r in table)
    assert s["rejected_by_reason"] == dict(Counter(r["reason"] for r in table if r["status"] != "ok"))
    assert s["rejected_by_reason"] == {"empty": 1, "too_short": 1}
    # clips and hours per split and label: the assembled stores
    total = 0
    for split in SPLITS:
        for label in LABELS:
            folder = res / "mmap" / split / label
            feats, audio = RaggedStore(folder / "features"), RaggedStore(folder / "audio")
            cell = s["splits"][split][label]
            assert cell["clips"] == len(feats) == len(audio), (split, label)
            assert cell["hours"] == pytest.approx(int(audio.lengths.sum()) / 16000 / 3600, abs=1e-6), (split, label)
            total += len(feats)
    assert total == s["ok"]
    # groups: the split table
    split_rows = list(read_table(res / "split" / "split.tsv"))
    groups = Counter(r["group"] for r in split_rows)
    assert s["groups"]["groups"] == len(groups)
    assert s["groups"]["largest"] == max(groups.values())
    assert s["groups"]["by_kind"]["spk"] == len({r["speaker"] for r in split_rows if r["speaker"]}) == 2
    assert s["groups"]["by_kind"]["clip"] == 3  # each noise clip is a group of its own
    assert s["leakage"]["passed"] is True
    # the text printed at the end of the run and written to summary.txt
    text = (res / "summary.txt").read_text()
    assert text in proc.stderr
    assert f"files seen: {s['files']}   ok: {s['ok']}   rejected: 2" in text
    assert "rejected empty: 1" in text and "rejected too_short: 1" in text
    for split in SPLITS:
        for label in LABELS:
            cell = s["splits"][split][label]
            assert f"{split:<11} {label:<14} {cell['clips']:>7} {cell['hours']:>9.4f}" in text
    assert f"speaker groups: {len(groups)} " in text and "leakage check: passed" in text
    # the report's counts table agrees with the split table
    counts = list(csv.DictReader(open(res / "report" / "counts.csv", encoding="utf-8")))
    assert sum(int(r["clips"]) for r in counts) == s["ok"]
    for r in counts:
        assert int(r["clips"]) == sum(
            1 for x in split_rows if (x["corpus"], x["label"], x["split"], x["use"]) == (r["corpus"], r["label"], r["split"], "1")
        )


@pytest.mark.slow
def test_html_report_has_every_section(reported):
    work, _, _, seconds = reported
    page = (work / "report.html").read_text(encoding="utf-8")
    for category, phrase in SECTIONS.items():
        assert f'"{category}"' in page, category
        assert phrase in page, phrase
    for name in REPORT_FILES:
        assert f"results/report/{name}" in page, name
    assert "Run summary" in page  # the summary on the first page (report/workflow.rst)
    assert len(page) < 8_000_000
    print(f"report.html: {len(page) / 1e6:.2f} MB in {seconds:.1f} s")


@pytest.mark.slow
def test_zip_report(reported):
    work, _, _, _ = reported
    run_snakemake(work, "--report", "report.zip")
    with zipfile.ZipFile(work / "report.zip") as z:
        names = z.namelist()
    assert "report/report.html" in names
    for name in REPORT_FILES:
        assert any(n.endswith("/" + name) for n in names), name


@pytest.mark.slow
def test_rerun_gives_the_same_bytes(reported, tmp_path):
    work, _, _, _ = reported
    out = work / "results" / "report"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    run_snakemake(work, "--forcerun", "report")
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(after) == sorted(before)
    changed = [name for name in before if before[name] != after[name]]
    assert not changed, f"not byte-identical on rerun: {changed}"


@pytest.mark.slow
def test_augmented_copies_shown_when_augment_runs(reported):
    work, cfg, _, _ = reported
    res = work / "results"
    if not (res / "augmented").is_dir():
        pytest.skip("the augment rule is not part of this workflow yet")
    # SpecAugment copies are made of the fixed-length windows (rule windows)
    stores = {s: res / "windows" / s / "positive" / "features" for s in SPLITS}
    examples = feature_examples(stores, cfg["seed"], augmented=res / "augmented" / "positive")
    assert examples and all(e.split == "train" for e in examples)
    for e in examples:
        assert len(e.augmented) == 2 and all(a.shape == e.features.shape for a in e.augmented)
        assert any(not np.array_equal(a, e.features) for a in e.augmented), "masks changed nothing"
    import matplotlib.image

    width = matplotlib.image.imread(res / "report" / "features_background.png").shape[1]
    assert width > 600, "the figure should have a column per augmented copy"


def _chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.slow
def test_page_renders_in_headless_chromium(reported, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (Debian package 'chromium'; setup.sh installs it)")
    work, _, _, _ = reported
    page = work / "report.html"
    shot = tmp_path / "report.png"
    common = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--window-size=1280,2000",
        # let the page's scripts finish before the shot, however loaded the machine is
        "--virtual-time-budget=20000", "--run-all-compositor-stages-before-draw",
    ]
    proc = subprocess.run(
        [*common, f"--user-data-dir={tmp_path / 'profile1'}", f"--screenshot={shot}", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert shot.is_file(), proc.stderr[-2000:]
    import matplotlib.image

    img = matplotlib.image.imread(shot)[..., :3]
    assert img.shape[:2] == (2000, 1280)
    pixels = (img * 255).round().astype(np.uint8).reshape(-1, 3)
    colours = len(np.unique(pixels.view(np.dtype((np.void, 3)))))
    non_white = float(np.mean(np.any(pixels < 240, axis=1)))
    assert colours > 100, f"only {colours} distinct colours: a blank page?"
    assert non_white > 0.10, f"only {non_white:.1%} of the pixels are not white"
    # the scripts ran: the rendered page holds the summary and the menu besides the data
    dom = subprocess.run(
        [*common, f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout
    raw = page.read_text(encoding="utf-8")
    assert dom.count("Run summary") > raw.count("Run summary"), "the report's first page was not rendered"
    assert dom.count("6. Run times") > raw.count("6. Run times"), "the results menu was not rendered"


# --------------------------------------------------------------------------- fast unit tests


def test_pca_2d_finds_the_main_directions_with_fixed_signs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 2)) * [10.0, 3.0] @ np.array([[0.6, 0.8], [-0.8, 0.6]])
    x = np.hstack([x, 0.01 * rng.standard_normal((500, 6))])
    y, explained = pca_2d(x)
    assert explained[0] > 0.85 and explained[1] > 0.05
    assert abs(np.corrcoef(y[:, 0], x[:, :2] @ [0.6, 0.8])[0, 1]) > 0.999
    y2, _ = pca_2d(-x)  # the sign rule is about the loadings, not the data's orientation
    np.testing.assert_allclose(np.abs(y2), np.abs(y), atol=1e-9)


def test_embedding_sample_does_not_depend_on_store_order(tmp_path):
    rng = np.random.default_rng(1)
    stores = []
    for k in range(3):
        with RaggedWriter(tmp_path / f"s{k}", np.float32, (8,)) as w:
            for i in range(20):
                w.append(f"c/{k}/{i:02d}", rng.standard_normal((1, 8)).astype(np.float32))
        stores.append(tmp_path / f"s{k}")
    ids, x = embedding_sample(stores, 15, seed=3)
    ids2, x2 = embedding_sample(stores[::-1], 15, seed=3)
    assert ids == ids2 and len(ids) == 15 and ids == sorted(ids)
    np.testing.assert_array_equal(x, x2)
    assert embedding_sample(stores, 15, seed=4)[0] != ids


def test_plot_is_byte_identical(tmp_path):
    rng = np.random.default_rng(2)
    ids = [f"c/{i:03d}" for i in range(60)]
    x = rng.standard_normal((60, 16))
    groups = {cid: f"spk:{i % 7}" for i, cid in enumerate(ids)}
    a = plot_embeddings(ids, x, groups, tmp_path / "a.png").read_bytes()
    b = plot_embeddings(ids, x, groups, tmp_path / "b.png").read_bytes()
    assert a == b and a[:8] == PNG


def test_read_benchmarks(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (tmp_path / "convert" / "c").mkdir(parents=True)
    (tmp_path / "convert" / "c" / "s0000.tsv").write_text(header + "1.5\t0:00:01\t10.0\t-\t-\t-\t-\t-\t-\t1.2\n")
    (tmp_path / "convert" / "c" / "s0001.tsv").write_text(header + "2.5\t0:00:02\t20.0\t-\t-\t-\t-\t-\t-\t2.0\n")
    (tmp_path / "cluster_split.tsv").write_text(header + "0.5\t0:00:00\tNA\t-\t-\t-\t-\t-\t-\t0.4\n")
    bench = read_benchmarks(tmp_path)
    assert sorted(bench) == ["cluster_split", "convert"]
    assert [j["s"] for j in bench["convert"]] == [1.5, 2.5]
    assert np.isnan(bench["cluster_split"][0]["max_rss"])


def test_embedding_sample_follows_the_split_hash_order(tmp_path):
    from wakeprep.split import _hash_order

    ids = [f"c/{i:03d}" for i in range(50)]
    with RaggedWriter(tmp_path / "s", np.float32, (4,)) as w:
        for cid in ids:
            w.append(cid, np.zeros((1, 4), np.float32))
    got, _ = embedding_sample([tmp_path / "s"], 10, seed=9)
    assert got == sorted(ids[i] for i in _hash_order(ids, 9)[:10])


def test_augment_audio_sets_in_summary_and_report(tmp_path):
    """The noise and RIR sets that fed each split: summary.json/summary.txt, the report's
    summary page and augment_audio/overview.txt, from the parts.json files."""
    from wakeprep.report import summary_html
    from wakeprep.summary import format_summary, summarise_augment_audio
    from wakeprep.waveaug.job import write_overview

    def parts(split, items, noise, rir):
        p = tmp_path / split / "positive" / "parts.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps({"items": items, "hours": items * 3.2 / 3600, "parts": [],
                                 "noise": {"corpora": noise, "clips": 2 * len(noise), "seconds": 30.0 * len(noise)},
                                 "rir": {"corpora": rir, "clips": 3 * len(rir), "seconds": 1.5}}))
        return p

    indexes = {("test", "positive"): parts("test", 4, ["my_noise"], []),
               ("train", "positive"): parts("train", 20, ["my_noise", "noise"], ["my_rirs"])}
    rows = summarise_augment_audio(indexes)
    assert [(r["split"], r["copies"]) for r in rows] == [("train", 20), ("test", 4)]  # split order
    assert rows[0]["noise"] == {"corpora": ["my_noise", "noise"], "clips": 4, "seconds": 60.0}
    assert rows[1]["rir"]["corpora"] == []
    text = format_summary({"files": 0, "ok": 0, "rejected": 0, "rejected_by_reason": {}, "corpora": {}, "labels": {},
                           "augment_audio": rows})
    overview = write_overview(indexes, tmp_path / "overview.txt")
    assert overview in text  # the same lines in both
    lines = text.splitlines()
    assert "train       positive            20     0.018  my_noise, noise (4, 60)" in lines[-2] and "my_rirs (3)" in lines[-2]
    assert lines[-1].startswith("test        positive             4") and lines[-1].endswith("- (0)")
    page = summary_html({"files": 0, "ok": 0, "rejected": 0, "labels": {}, "augment_audio": rows})
    assert "<b>augment_audio:</b>" in page
    assert ">train / positive</td>" in page and ">my_noise, noise</td>" in page and ">my_rirs</td>" in page
    assert "augment_audio" not in summary_html({"files": 0, "ok": 0, "rejected": 0, "labels": {}})
