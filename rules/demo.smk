from wakeprep.config import demo_marker


# Generated only while the demo folder holds no complete demo for this config (see
# wakeprep.config.demo_generates): an existing demo/ is never made again.
checkpoint demo_corpus:
    output:
        demo_marker(config),
    log:
        f"{RESULTS}/logs/demo_corpus.log",
    params:
        # what the demo's bytes depend on (demo.folder is the output's path, demo.generate
        # whether the rule is needed at all)
        seed=config["seed"],
        takes=config["demo"]["takes"],
    conda:
        "../envs/demo.yaml"
    script:
        "../scripts/demo_corpus.py"
