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
        device=config["augment"]["device"],
        copies=config["augment"]["copies"],
        time_masks=config["augment"]["time_masks"],
        time_mask_max=config["augment"]["time_mask_max"],
        freq_masks=config["augment"]["freq_masks"],
        freq_mask_max=config["augment"]["freq_mask_max"],
        mask_value=config["augment"]["mask_value"],
        seed=config["seed"] if config["augment"]["seed"] is None else config["augment"]["seed"],
        batch_items=config["augment"]["batch_items"],
        shard_items=config["augment"]["shard_items"],
    threads: 1
    resources:
        gpu=1 if config["augment"]["device"] == "cuda" else 0,
    conda:
        "../envs/augment.yaml"
    script:
        "../scripts/augment.py"
