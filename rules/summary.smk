rule summary:
    input:
        tables=lambda w: shard_paths(f"{SHARD}/clips.tsv"),
        features=lambda w: shard_paths(f"{SHARD}/features"),
        split=f"{RESULTS}/split/split.tsv",
        split_report=f"{RESULTS}/split/report.json",
        windows=[windows_dir(s, l) for s in SPLITS for l in LABELS if windowed(s, l)],
        augment_audio=augment_audio_targets(),  # parts.json files: the noise and RIR sets of each split
    output:
        clips=f"{RESULTS}/clips.tsv",
        summary=f"{RESULTS}/summary.txt",
        json=f"{RESULTS}/summary.json",
    log:
        f"{RESULTS}/logs/summary.log",
    params:
        format=SUMMARY_FORMAT,  # a new summary.json layout reruns this rule, and so the report
        ambient_labels=config["export"]["ambient_labels"],
        augment_audio_pairs=[p.split("/")[-3:-1] for p in augment_audio_targets()],
        # every corpus, so that one allowed to be empty is listed with 0 files
        corpora={name: c["label"] for name, c in sorted(CORPORA.items())},
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/summary.py"
