rule features:
    input:
        audio=f"{SHARD}/audio",
    output:
        features=directory(f"{SHARD}/features"),
    log:
        f"{RESULTS}/logs/features/{{corpus}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/features/{{corpus}}/{{shard}}.tsv"
    params:
        # what changes the codes; device and batch_mb do not (the script reads them from
        # the config), so switching them reruns nothing
        pad_ms=config["features"]["pad_ms"],
    threads: 1
    resources:
        gpu=1 if config["features"]["device"] == "cuda" else 0,
    conda:
        "../envs/features.yaml"
    script:
        "../scripts/features.py"
