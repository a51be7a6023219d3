rule assemble:
    input:
        split=f"{RESULTS}/split/split.tsv",
        features=lambda w: shard_paths(f"{SHARD}/features", corpora_with_label(w.label)),
        audio=lambda w: shard_paths(f"{SHARD}/audio", corpora_with_label(w.label)),
        tables=lambda w: shard_paths(f"{SHARD}/clips.tsv", corpora_with_label(w.label)),
    output:
        directory(assembled("{split}", "{label}")),
    log:
        f"{RESULTS}/logs/assemble/{{split}}/{{label}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/assemble/{{split}}/{{label}}.tsv"
    params:
        seed=config["seed"],
    conda:
        "../envs/split.yaml"
    script:
        "../scripts/assemble.py"
