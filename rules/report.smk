# The report: one rule per section of wakeprep.report.SECTIONS (the one table of its
# files, captions and menu entries), each rendering results/summary.json or reading the
# stores; rule report writes the run summary page last. `snakemake --report` gathers them.
from wakeprep.report import file_names as report_file_names, rule_outputs


rule report_counts:
    input:
        summary=f"{RESULTS}/summary.json",
    output:
        **rule_outputs("counts", f"{RESULTS}/report", LABELS, report),
    log:
        f"{RESULTS}/logs/report/counts.log",
    params:
        section="counts",
        options={},
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/report_section.py"


rule report_durations:
    input:
        summary=f"{RESULTS}/summary.json",
    output:
        **rule_outputs("durations", f"{RESULTS}/report", LABELS, report),
    log:
        f"{RESULTS}/logs/report/durations.log",
    params:
        section="durations",
        options={},
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/report_section.py"


rule report_rejects:
    input:
        summary=f"{RESULTS}/summary.json",
    output:
        **rule_outputs("rejects", f"{RESULTS}/report", LABELS, report),
    log:
        f"{RESULTS}/logs/report/rejects.log",
    params:
        section="rejects",
        options={},
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/report_section.py"


rule report_speakers:
    input:
        summary=f"{RESULTS}/summary.json",
        split=f"{RESULTS}/split/split.tsv",
        embeddings=lambda w: shard_paths(f"{SHARD}/embeddings", SPEECH),
    output:
        **rule_outputs("speakers", f"{RESULTS}/report", LABELS, report),
    log:
        f"{RESULTS}/logs/report/speakers.log",
    params:
        section="speakers",
        options={"seed": config["seed"]},
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/report_section.py"


rule report_features:
    input:
        assembled=[export_source(s, l) for s in SPLITS for l in LABELS],  # the windows where made
        augmented=[f"{RESULTS}/augmented/{l}" for l in TRAINING_LABELS] if config["augment"]["enabled"] else [],
    output:
        **rule_outputs("features", f"{RESULTS}/report", LABELS, report),
    log:
        f"{RESULTS}/logs/report/features.log",
    params:
        section="features",
        options={"seed": config["seed"], "labels": LABELS, "pairs": [[s, l] for s in SPLITS for l in LABELS]},
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/report_section.py"


rule report_runtimes:
    input:
        # Run times are read from results/benchmarks, not listed as inputs: these inputs
        # only make the rule run after every benchmarked job (convert, features, embed,
        # cluster_split, assemble, windows, augment, augment_audio). This rule has no
        # benchmark of its own, so rerunning it alone gives the same bytes.
        after=[f"{RESULTS}/summary.json", *(export_source(s, l) for s in SPLITS for l in LABELS)]
        + ([f"{RESULTS}/augmented/{l}" for l in TRAINING_LABELS] if config["augment"]["enabled"] else []),
    output:
        **rule_outputs("runtimes", f"{RESULTS}/report", LABELS, report),
    log:
        f"{RESULTS}/logs/report/runtimes.log",
    params:
        section="runtimes",
        options={"benchmarks": f"{RESULTS}/benchmarks"},
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/report_section.py"


rule report:
    input:
        summary=f"{RESULTS}/summary.json",
        sections=[f"{RESULTS}/report/{n}" for n in report_file_names(LABELS) if n != "summary.html"],
    output:
        **rule_outputs("summary", f"{RESULTS}/report", LABELS, report),
    log:
        f"{RESULTS}/logs/report.log",
    params:
        section="summary",
        options={},
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/report_section.py"
