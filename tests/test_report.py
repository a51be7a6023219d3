"""The run statistics and the report: :class:`wakeprep.stats.RunStats` computed from small
known tables, its renderings (summary.txt, the report's pages, tables and plots), the
section table, and one workflow run on a small corpus through ``snakemake --report`` (HTML
and zip), byte-identical plots, and the page rendered by a headless Chromium."""

import csv
import json
import shutil
import subprocess
import time
import zipfile

import numpy as np
import pytest

from helpers import REPO, make_small_corpus, run_snakemake, tone, workflow_config, write_audio
from wakeprep.report import SECTIONS, file_names, write_section
from wakeprep.report.plots_features import feature_examples
from wakeprep.report.plots_runtimes import read_benchmarks, runtime_rows
from wakeprep.report.plots_speakers import embedding_sample, pca_2d, plot_embeddings
from wakeprep.stats import RunStats, compute_stats, size_bin, size_bin_name, split_label_counts
from wakeprep.store import RaggedStore, RaggedWriter
from wakeprep.summary import format_summary

SPLITS = ("train", "validation", "test")
LABELS = ("background", "positive")  # speech is positive, noise is background
PNG = b"\x89PNG\r\n\x1a\n"
#: Each section of the report: its category and a phrase of its caption or content.
CATEGORIES = {
    "1. Overview": "clips and hours per corpus, label and split",
    "2. Clip durations": "Clip duration histograms per label",
    "3. Rejected files": "Rejected files per reason",
    "4. Speakers and split": "leakage audit summary",
    "5. Features": "Micro-frontend features of a few clips",
    "6. Run times": "read from the",
}
REPORT_FILES = file_names(LABELS)
REPORT_RULES = ["report" if name == "summary" else f"report_{name}" for name in SECTIONS]


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
def test_summary_numbers_equal_the_stores(reported):
    work, _, proc, _ = reported
    res = work / "results"
    s = json.loads((res / "summary.json").read_text())
    assert s["files"] == 8 + 3 + 2 and s["ok"] == 8 + 3
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
    assert s["groups"]["by_kind"]["spk"] == 2 and s["groups"]["by_kind"]["clip"] == 3  # a noise clip: a group
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
    assert f"speaker groups: {s['groups']['groups']} " in text and "leakage check: passed" in text


@pytest.mark.slow
def test_html_report_has_every_section(reported):
    work, _, _, seconds = reported
    page = (work / "report.html").read_text(encoding="utf-8")
    for category, phrase in CATEGORIES.items():
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
    run_snakemake(work, "--forcerun", *REPORT_RULES)
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


# clip table: 6 files of corpora a (positive) and b (background); e (negative) is configured but empty
CLIP_ROWS = [
    {"clip_id": "a/1", "corpus": "a", "label": "positive", "status": "ok", "duration_s": "1.0", "source": "1.wav"},
    {"clip_id": "a/2", "corpus": "a", "label": "positive", "status": "ok", "duration_s": "3.0", "source": "2.wav"},
    {"clip_id": "a/3", "corpus": "a", "label": "positive", "status": "rejected", "reason": "empty", "source": "3.wav",
     "detail": "x" * 300, "duration_s": ""},
    {"clip_id": "b/1", "corpus": "b", "label": "background", "status": "ok", "duration_s": "1800", "source": "1.wav"},
    {"clip_id": "b/2", "corpus": "b", "label": "background", "status": "rejected", "reason": "too_short",
     "source": "2.wav", "detail": "0.02 s", "duration_s": ""},
    {"clip_id": "b/3", "corpus": "b", "label": "background", "status": "rejected", "reason": "empty",
     "source": "<b>.wav", "detail": "", "duration_s": ""},
]
CORPORA = {"a": "positive", "b": "background", "e": "negative"}


def _split(cid, label, group, split, use, seconds):
    return {"clip_id": cid, "corpus": cid.split("/")[0], "label": label, "group": group, "split": split,
            "use": use, "duration_s": str(seconds)}


# split table: groups spk:x (2 clips, one unused), clu:a/4 (1), clip:b/1 (1), spk:y (5 clips)
SPLIT_ROWS = [
    _split("a/1", "positive", "spk:x", "train", "1", 1.0),
    _split("a/2", "positive", "spk:x", "train", "0", 3.0),
    _split("a/4", "positive", "clu:a/4", "validation", "1", 2.0),
    _split("b/1", "background", "clip:b/1", "train", "1", 1800),
    *[_split(f"c/{i}", "positive", "spk:y", "test", "1", 1.0) for i in range(5)],
]
SPLIT_REPORT = {
    "leakage_check": {"passed": True, "groups_in_several_splits": []},
    "leakage_audit": {"checked": 6, "threshold": 0.9, "per_split_label": {
        "validation/positive": {"clips": 1, "above": 1, "fraction_above": 1.0},
        "test/positive": {"clips": 5, "above": 2, "fraction_above": 0.4}},
        "worst_pairs": [{"similarity": 0.97, "split": "test", "clip": "c/1", "group": "spk:y",
                         "nearest_train_clip": "a/1", "train_group": "spk:x"}]},
    "clustering": {"method": "exact"},
    "warnings": ["a warning"],
}


@pytest.fixture
def stats():
    return compute_stats(CLIP_ROWS, SPLIT_ROWS, SPLIT_REPORT, corpora=CORPORA)


def test_size_bins_are_powers_of_two():
    assert [size_bin(n) for n in (0, 1, 2, 3, 4, 5, 8, 9, 100)] == [1, 1, 2, 4, 4, 8, 8, 16, 128]
    assert [size_bin_name(b) for b in (1, 2, 4, 8, 128)] == ["1", "2", "3-4", "5-8", "65-128"]


def test_stats_of_the_clip_table(stats):
    assert (stats.files, stats.ok, stats.rejected) == (6, 3, 3)
    assert stats.rejected_by_reason == {"empty": 2, "too_short": 1}
    assert stats.rejected_by_corpus == {"empty": {"a": 1, "b": 1}, "too_short": {"b": 1}}
    assert [r["clip_id"] for r in stats.rejected_first] == ["a/3", "b/2", "b/3"]
    assert len(stats.rejected_first[0]["detail"]) == 200
    a, b, e = (stats.corpora[k] for k in "abe")
    assert (a.label, a.files, a.ok, a.rejected, a.hours) == ("positive", 3, 2, 1, round(4 / 3600, 6))
    assert (b.files, b.ok, b.hours) == (3, 1, 0.5)
    assert (e.label, e.files, e.ok, e.hours) == ("negative", 0, 0, 0.0)  # configured, no file
    assert {k: (v.clips, v.hours) for k, v in stats.labels.items()} == {
        "background": (1, 0.5), "negative": (0, 0.0), "positive": (2, round(4 / 3600, 6))}
    d = stats.durations["positive"]
    assert (d.clips, d.median, d.shortest, d.longest, sum(d.counts)) == (2, 2.0, 1.0, 3.0, 2)
    assert d.edges[0] == 1.0 and d.edges[-1] == 3.0 and len(d.edges) == len(d.counts) + 1 and not d.log_x
    assert sorted(stats.durations) == ["background", "positive"]


def test_stats_of_the_split_table(stats):
    cell = {(s, l): (c.clips, c.hours, c.unused) for s, per in stats.splits.items() for l, c in per.items()}
    assert cell == {
        ("train", "positive"): (1, round(1 / 3600, 6), 1), ("train", "background"): (1, 0.5, 0),
        ("validation", "positive"): (1, round(2 / 3600, 6), 0), ("validation", "background"): (0, 0.0, 0),
        ("test", "positive"): (5, round(5 / 3600, 6), 0), ("test", "background"): (0, 0.0, 0),
    }
    assert [s for s, _ in stats.ordered_splits()] == list(SPLITS)
    assert [(c.corpus, c.label, c.split, c.clips, c.unused) for c in stats.cells] == [
        ("a", "positive", "train", 1, 1), ("a", "positive", "validation", 1, 0),
        ("b", "background", "train", 1, 0), ("c", "positive", "test", 5, 0)]
    g = stats.groups
    assert (g.groups, g.smallest, g.median, g.mean, g.largest) == (4, 1, 1.5, 2.25, 5)
    assert g.by_kind == {"spk": 2, "clu": 1, "clip": 1}
    assert g.size_bins == {"clip": {"1": 1}, "clu": {"1": 1}, "spk": {"2": 1, "8": 1}}
    assert stats.ambient.hours == {"train": 0.5, "validation": 0.0, "test": 0.0}
    assert [w.split("'")[1] for w in stats.ambient.warnings] == ["validation", "test"]
    leak = stats.leakage
    assert (leak.passed, leak.audit_checked, leak.audit_above, leak.audit_threshold) == (True, 6, 3, 0.9)
    assert leak.clustering == {"method": "exact"} and leak.warnings == ["a warning"]


def test_stats_round_trip_through_json(stats, tmp_path):
    text = stats.to_json()
    assert RunStats.from_json(text) == stats
    assert json.loads(text)["splits"]["test"]["positive"] == {"clips": 5, "hours": round(5 / 3600, 6), "unused": 0}
    without_split = compute_stats(CLIP_ROWS)
    assert without_split.groups is None and without_split.splits == {}
    assert RunStats.from_json(without_split.to_json()) == without_split


def test_a_summary_of_another_format_is_refused(tmp_path):
    old = tmp_path / "summary.json"
    old.write_text(json.dumps({"files": 1, "ok": 1, "rejected": 0}))  # before the format key
    with pytest.raises(ValueError, match=r"summary\.json: summary format None, not 1: .*--forcerun summary"):
        RunStats.read(old)


def test_cluster_split_counts_use_the_same_tally():
    got = split_label_counts((r["split"], r["label"], r["use"] == "1", float(r["duration_s"])) for r in SPLIT_ROWS)
    assert list(got) == ["test/positive", "train/background", "train/positive", "validation/positive"]
    assert got["train/positive"] == {"clips": 1, "hours": round(1 / 3600, 6), "unused": 1}


def test_summary_text_renders_the_stats(stats):
    lines = format_summary(stats).splitlines()
    assert "files seen: 6   ok: 3   rejected: 3" in lines
    assert "  rejected empty: 2" in lines and "  rejected too_short: 1" in lines
    assert any(line.split() == ["e", "negative", "0", "0", "0", "0.0000"] for line in lines)
    assert f"{'train':<11} {'positive':<14} {1:>7} {0.0003:>9.4f} {1:>7}" in lines
    assert ("speaker groups: 4 (known speakers 2, clusters 1, single clips 1); largest 5 clips, median 1.5"
            in lines)
    assert "ambient hours (background): train 0.5000   validation 0.0000   test 0.0000" in lines
    assert "leakage check: passed" in lines
    assert "leakage audit: 3 of 6 validation/test clips have a training clip more similar than 0.9" in lines
    only_clips = format_summary(compute_stats(CLIP_ROWS))
    assert "speaker groups" not in only_clips and "leakage" not in only_clips


def test_every_rejected_corpus_is_warned_about():
    rows = [dict(r, status="rejected", reason="empty") for r in CLIP_ROWS if r["corpus"] == "b"]
    assert "  warning: every file of corpus 'b' was rejected" in format_summary(compute_stats(rows)).splitlines()


def _outputs(tmp_path, name, labels=LABELS):
    return {f.key: ([tmp_path / f.name.format(label=l) for l in labels] if f.per_label else tmp_path / f.name)
            for f in SECTIONS[name].files}


@pytest.fixture
def summary_json(stats, tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(stats.to_json())
    return path


def test_counts_section_renders_the_stats(summary_json, tmp_path):
    out = _outputs(tmp_path, "counts")
    write_section("counts", out, summary=summary_json)
    rows = list(csv.DictReader(open(out["counts_csv"], encoding="utf-8")))
    assert [(r["corpus"], r["split"], r["clips"], r["unused"]) for r in rows] == [
        ("a", "train", "1", "1"), ("a", "validation", "1", "0"), ("b", "train", "1", "0"), ("c", "test", "5", "0")]
    page = out["counts_html"].read_text()
    assert page.count("<table>") == 3 and "<caption>Files per corpus</caption>" in page
    # the label x split table: positive has 1, 1 and 5 clips in use in train, validation, test
    assert ('<td>positive</td><td class="num">1</td><td class="num">0.0003</td><td class="num">1</td>'
            '<td class="num">0.0006</td><td class="num">5</td><td class="num">0.0014</td>') in page
    assert out["hours"].read_bytes()[:8] == PNG


def test_rejects_section_escapes_paths(summary_json, tmp_path):
    out = _outputs(tmp_path, "rejects")
    write_section("rejects", out, summary=summary_json)
    page = out["rejected_html"].read_text()
    assert "3 files rejected" in page and "&lt;b&gt;.wav" in page and "<b>.wav" not in page
    rows = list(csv.DictReader(open(out["rejected_csv"], encoding="utf-8")))
    assert [r["source"] for r in rows] == ["3.wav", "2.wav", "<b>.wav"]
    assert out["rejected_png"].read_bytes()[:8] == PNG


def test_speakers_section_shows_a_failed_check(stats, tmp_path):
    from wakeprep.split import SPLIT_COLUMNS
    from wakeprep.table import write_table

    stats.leakage.passed = False
    stats.leakage.groups_in_several_splits = ["spk:x"]
    (tmp_path / "summary.json").write_text(stats.to_json())
    write_table(tmp_path / "split.tsv", SPLIT_ROWS, SPLIT_COLUMNS)
    out = _outputs(tmp_path, "speakers")
    write_section("speakers", out, summary=tmp_path / "summary.json", split=tmp_path / "split.tsv", embeddings=[])
    page = out["leakage"].read_text()
    assert '<b class="bad">FAILED</b>; groups in several splits: spk:x' in page
    assert "<td>known speaker</td><td class=\"num\">2</td>" in page
    assert "<td>test/positive</td>" in page and "<td>c/1</td>" in page and "<li>a warning</li>" in page
    assert all(out[k].read_bytes()[:8] == PNG for k in ("group_sizes", "embeddings"))


def test_summary_page_renders_the_stats(summary_json, tmp_path):
    out = _outputs(tmp_path, "summary")
    write_section("summary", out, summary=summary_json)
    page = out["summary"].read_text()
    assert "<b>files seen:</b> 6 &nbsp; <b>ok:</b> 3 &nbsp; <b>rejected:</b> 3" in page
    assert ">test / positive</td>" in page and ">a warning<" not in page
    assert "warning: split &#39;test&#39; has no background audio" in page
    assert '<span style="color:#15803d">passed</span>; audit: 3 of 6' in page


def test_a_section_without_an_output_path_fails(summary_json, tmp_path):
    with pytest.raises(ValueError, match="report section 'counts': no output path for hours"):
        write_section("counts", {"counts_html": tmp_path / "a", "counts_csv": tmp_path / "b"}, summary=summary_json)


def test_sections_match_the_rules_and_captions():
    """One table: each section has its rule in rules/report.smk, and each file a caption."""
    import re

    rules = re.findall(r"^rule (report\w*):", (REPO / "rules" / "report.smk").read_text(), re.M)
    assert sorted(rules) == sorted("report" if n == "summary" else f"report_{n}" for n in SECTIONS)
    for section in SECTIONS.values():
        for f in section.files:
            assert (REPO / "report" / f.caption).is_file(), f.caption
    names = file_names(["positive", "noise"])
    assert "features_positive.png" in names and "features_noise.png" in names and len(names) == len(set(names))


def test_features_section_shows_each_labels_own_augmented_copies(tmp_path):
    """Augmented folders are matched to labels by name: a resource label (noise) that sorts
    before a training label gets no copies, and the training label gets its own."""
    from PIL import Image

    rng = np.random.default_rng(5)
    for label in ("noise", "positive"):
        with RaggedWriter(tmp_path / "mmap" / label / "features", np.uint16, (40,)) as w:
            for i in range(3):
                w.append(f"{label}/{i}", rng.integers(0, 400, (50, 40), dtype=np.uint16))
    with RaggedWriter(tmp_path / "augmented" / "positive" / "part-0000", np.uint16, (40,)) as w:
        for i in range(3):
            for c in range(2):
                w.append(f"positive/{i}#aug{c}", rng.integers(0, 400, (50, 40), dtype=np.uint16))
    out = _outputs(tmp_path, "features", ["noise", "positive"])
    write_section("features", out, assembled=[tmp_path / "mmap" / "noise", tmp_path / "mmap" / "positive"],
                  pairs=[["train", "noise"], ["train", "positive"]], labels=["noise", "positive"],
                  augmented=[tmp_path / "augmented" / "positive"], seed=1)
    widths = [Image.open(p).size[0] for p in out["features"]]
    assert widths[1] > 2 * widths[0], widths  # positive: the original and two copies; noise: the original


def test_runtime_rows_put_the_slowest_rule_first(tmp_path):
    bench = {"a": [{"s": 1.0, "max_rss": 5.0, "cpu_time": 0.5}],
             "b": [{"s": 2.0, "max_rss": float("nan"), "cpu_time": 1.0}, {"s": 3.0, "max_rss": float("nan"), "cpu_time": 1.0}]}
    assert runtime_rows(bench) == [["b", 2, 5.0, 2.5, 3.0, None, 2.0], ["a", 1, 1.0, 1.0, 1.0, 5.0, 0.5]]


def test_augment_audio_sets_in_summary_and_report(tmp_path):
    """The noise and RIR sets that fed each split: summary.txt, the report's summary page
    and augment_audio/overview.txt, from the parts.json files."""
    from wakeprep.report.summary_page import summary_html
    from wakeprep.stats import summarise_augment_audio
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
    text = format_summary(RunStats(augment_audio=rows))
    overview = write_overview(indexes, tmp_path / "overview.txt")
    assert overview in text  # the same lines in both
    lines = text.splitlines()
    assert "train       positive            20     0.018  my_noise, noise (4, 60)" in lines[-2] and "my_rirs (3)" in lines[-2]
    assert lines[-1].startswith("test        positive             4") and lines[-1].endswith("- (0)")
    page = summary_html(RunStats(augment_audio=rows))
    assert "<b>augment_audio:</b>" in page
    assert ">train / positive</td>" in page and ">my_noise, noise</td>" in page and ">my_rirs</td>" in page
    assert "augment_audio" not in summary_html(RunStats())


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
