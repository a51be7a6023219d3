rule convert:
    input:
        manifest=f"{MANIFESTS}/{{corpus}}/{{shard}}.jsonl",
    output:
        audio=directory(f"{SHARD}/audio"),
        table=f"{SHARD}/clips.tsv",
        # with features.device cpu, the clips' features, computed while their audio is in
        # memory, for rule features to take over (wakeprep/featurecache.py)
        made=directory(f"{SHARD}/features_convert"),
    log:
        f"{RESULTS}/logs/convert/{{corpus}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/convert/{{corpus}}/{{shard}}.tsv"
    params:
        corpus=lambda w: canonical(CORPORA[w.corpus]),
        audio=canonical(config["audio"]),
        vad=canonical(config["vad"]),
    threads: 1
    conda:
        "../envs/convert.yaml"
    script:
        "../scripts/convert.py"
