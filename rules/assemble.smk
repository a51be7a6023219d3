rule assemble:
    input:
        split=f"{RESULTS}/split/split.tsv",
        features=lambda w: shard_paths(f"{SHARD}/features", corpora_with_label(w.label)),
        audio=lambda w: shard_paths(f"{SHARD}/audio", corpora_with_label(w.label)),
    output:
        directory(assembled("{split}", "{label}")),
    log:
        f"{RESULTS}/logs/assemble/{{split}}/{{label}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/assemble/{{split}}/{{label}}.tsv"
    params:
        seed=config["seed"],
    conda:
        "../envs/cluster.yaml"
    script:
        "../scripts/assemble.py"


rule export_microwakeword:
    input:
        [assembled(s, l) for s in SPLITS for l in TRAINING_LABELS],
    output:
        directory(f"{RESULTS}/microwakeword"),
    log:
        f"{RESULTS}/logs/export_microwakeword.log",
    params:
        pairs=[[s, l] for s in SPLITS for l in TRAINING_LABELS],
    conda:
        "../envs/cluster.yaml"
    script:
        "../scripts/export_microwakeword.py"
