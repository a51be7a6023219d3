rule index:
    input:
        outputs,
    output:
        INDEX,
    log:
        f"{RESULTS}/logs/index.log",
    params:
        # what results/ holds for this config; shards are read from the manifests
        expected=expected_results(),
        remove_stale=config["remove_stale_results"],
        results=lambda w, output: os.path.dirname(output[0]),
    localrule: True
    conda:
        "../envs/report.yaml"
    script:
        "../scripts/index.py"
