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
        pad_ms=config["features"]["pad_ms"],
    threads: 1
    conda:
        "../envs/features.yaml"
    script:
        "../scripts/features.py"
