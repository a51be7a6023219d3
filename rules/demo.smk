checkpoint demo_corpus:
    output:
        directory(config["demo"]["folder"]),
    log:
        f"{RESULTS}/logs/demo_corpus.log",
    params:
        seed=config["seed"],
        takes=config["demo"]["takes"],
    conda:
        "../envs/demo.yaml"
    script:
        "../scripts/demo_corpus.py"
