rule report:
    input:
        clips=f"{RESULTS}/clips.tsv",
        summary=f"{RESULTS}/summary.json",
        split=f"{RESULTS}/split/split.tsv",
        split_report=f"{RESULTS}/split/report.json",
        embeddings=lambda w: shard_paths(f"{SHARD}/embeddings", SPEECH),
        assembled=[export_source(s, l) for s in SPLITS for l in LABELS],  # the windows where made
        augmented=[f"{RESULTS}/augmented/{l}" for l in TRAINING_LABELS] if config["augment"]["enabled"] else [],
    output:
        summary=report(
            f"{RESULTS}/report/summary.html",
            caption="../report/summary.rst",
            category="1. Overview",
            subcategory="Run summary",
        ),
        counts_html=report(
            f"{RESULTS}/report/counts.html",
            caption="../report/counts.rst",
            category="1. Overview",
            subcategory="Counts and hours",
        ),
        counts_csv=report(
            f"{RESULTS}/report/counts.csv",
            caption="../report/counts.rst",
            category="1. Overview",
            subcategory="Counts and hours",
        ),
        hours=report(
            f"{RESULTS}/report/hours.png",
            caption="../report/hours.rst",
            category="1. Overview",
            subcategory="Counts and hours",
        ),
        durations=report(
            f"{RESULTS}/report/durations.png",
            caption="../report/durations.rst",
            category="2. Clip durations",
            subcategory="Per label",
        ),
        rejected_png=report(
            f"{RESULTS}/report/rejected.png",
            caption="../report/rejected.rst",
            category="3. Rejected files",
            subcategory="By reason",
        ),
        rejected_html=report(
            f"{RESULTS}/report/rejected.html",
            caption="../report/rejected_paths.rst",
            category="3. Rejected files",
            subcategory="Paths",
        ),
        rejected_csv=report(
            f"{RESULTS}/report/rejected.csv",
            caption="../report/rejected_paths.rst",
            category="3. Rejected files",
            subcategory="Paths",
        ),
        group_sizes=report(
            f"{RESULTS}/report/group_sizes.png",
            caption="../report/group_sizes.rst",
            category="4. Speakers and split",
            subcategory="Speaker groups",
        ),
        leakage=report(
            f"{RESULTS}/report/leakage.html",
            caption="../report/leakage.rst",
            category="4. Speakers and split",
            subcategory="Leakage audit",
        ),
        embeddings=report(
            f"{RESULTS}/report/embeddings.png",
            caption="../report/embeddings.rst",
            category="4. Speakers and split",
            subcategory="Speaker embeddings",
        ),
        features=[
            report(
                f"{RESULTS}/report/features_{l}.png",
                caption="../report/features.rst",
                category="5. Features",
                subcategory="Feature images",
                labels={"label": l},
            )
            for l in LABELS
        ],
        runtimes_png=report(
            f"{RESULTS}/report/runtimes.png",
            caption="../report/runtimes.rst",
            category="6. Run times",
            subcategory="Per rule",
        ),
        runtimes_html=report(
            f"{RESULTS}/report/runtimes.html",
            caption="../report/runtimes.rst",
            category="6. Run times",
            subcategory="Per rule",
        ),
        runtimes_csv=report(
            f"{RESULTS}/report/runtimes.csv",
            caption="../report/runtimes.rst",
            category="6. Run times",
            subcategory="Per rule",
        ),
    log:
        f"{RESULTS}/logs/report.log",
    params:
        seed=config["seed"],
        labels=LABELS,
        pairs=[[s, l] for s in SPLITS for l in LABELS],
        # Run times are read from this folder, not listed as inputs: every benchmarked
        # job (convert, features, embed, cluster_split, assemble, augment) has finished
        # before this rule starts, since its outputs are inputs here. This rule has no
        # benchmark of its own, so rerunning it alone gives the same bytes.
        benchmarks=f"{RESULTS}/benchmarks",
    threads: 1
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/report.py"
