rule augment:
    input:
        assembled=lambda w: train_features(w.label),  # fixed-length windows where rule windows makes them
    output:
        augmented=directory(f"{RESULTS}/augmented/{{label}}"),
    log:
        f"{RESULTS}/logs/augment/{{label}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/augment/{{label}}.tsv"
    params:
        augment=canonical(config["augment"]),
        # the top-level seed matters only when augment.seed is null: passed only then, so
        # changing it does not rerun augment when augment.seed is set
        seed=config["seed"] if config["augment"].get("seed") is None else None,
    threads: 1
    resources:
        gpu=1 if config["augment"]["device"] == "cuda" else 0,
    conda:
        "../envs/augment.yaml"
    script:
        "../scripts/augment.py"
