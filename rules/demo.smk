from wakeprep.config import demo_marker


# Generated only while the demo folder holds no complete demo for this config (see
# wakeprep.config.demo_generates): an existing demo/ is never made again.
checkpoint demo_corpus:
    output:
        demo_marker(config),
    log:
        f"{RESULTS}/logs/demo_corpus.log",
    params:
        seed=config["seed"],
        takes=config["demo"]["takes"],
    conda:
        "../envs/demo.yaml"
    script:
        "../scripts/demo_corpus.py"
