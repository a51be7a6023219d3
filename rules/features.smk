# features.device cpu (the default): the convert job has computed the shard's features while
# converting it, and this job takes them over (hard links, a fraction of a second) when
# they were made with this pad_ms; otherwise (cuda, or pad_ms changed since) it computes them
# from the audio store. Either way the same bytes (docs/benchmarks.md, "Convert + features").
rule features:
    input:
        audio=f"{SHARD}/audio",
        made=f"{SHARD}/features_convert",
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
