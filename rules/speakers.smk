rule embed:
    input:
        audio=f"{SHARD}/audio",
        table=f"{SHARD}/clips.tsv",
    output:
        embeddings=directory(f"{SHARD}/embeddings"),
    log:
        f"{RESULTS}/logs/embed/{{corpus}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/embed/{{corpus}}/{{shard}}.tsv"
    params:
        embed=canonical(config["embed"]),
    threads: config["embed"]["threads"]
    conda:
        "../envs/embed.yaml"
    script:
        "../scripts/embed.py"


rule cluster_split:
    input:
        tables=lambda w: shard_paths(f"{SHARD}/clips.tsv"),
        embeddings=lambda w: shard_paths(f"{SHARD}/embeddings", SPEECH),
    output:
        table=f"{RESULTS}/split/split.tsv",
        report=f"{RESULTS}/split/report.json",
    log:
        f"{RESULTS}/logs/cluster_split.log",
    benchmark:
        f"{RESULTS}/benchmarks/cluster_split.tsv"
    params:
        seed=config["seed"],
        speakers=canonical(config["speakers"]),
        split=canonical(config["split"]),
    threads: 2
    conda:
        "../envs/split.yaml"
    script:
        "../scripts/cluster_split.py"
