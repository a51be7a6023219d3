# rule windows: fixed-length windows and their features (the features env: the C or numba frontend kernel, pymicro-features)
rule windows:
    input:
        assembled=assembled("{split}", "{label}"),
    output:
        directory(f"{RESULTS}/windows/{{split}}/{{label}}"),
    log:
        f"{RESULTS}/logs/windows/{{split}}/{{label}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/windows/{{split}}/{{label}}.tsv"
    params:
        windows=canonical(config["windows"]),
        ambient_labels=config["export"]["ambient_labels"],
        seed=config["seed"],
    threads: 1
    conda:
        "../envs/features.yaml"
    script:
        "../scripts/windows.py"
