rule export_microwakeword:
    input:
        sources=[export_source(s, l) for s in SPLITS for l in TRAINING_LABELS],
        augmented=export_augmented(),
        waveaug=export_augment_audio()[1],  # parts.json of each split and label (augment_audio)
        windows=[windows_dir(s, l) for s in SPLITS for l in TRAINING_LABELS if windowed(s, l)],
    output:
        directory(f"{RESULTS}/microwakeword"),
    log:
        f"{RESULTS}/logs/export_microwakeword.log",
    benchmark:
        f"{RESULTS}/benchmarks/export_microwakeword.tsv"
    params:
        pairs=[[s, l] for s in SPLITS for l in TRAINING_LABELS],
        labels=[l for l in TRAINING_LABELS] if export_augmented() else [],
        waveaug_pairs=export_augment_audio()[0],
        export=canonical(config["export"]),
    conda:
        "../envs/split.yaml"
    script:
        "../scripts/export_microwakeword.py"


rule export_openwakeword:
    input:
        [assembled(s, l) for s in SPLITS for l in TRAINING_LABELS],
    output:
        directory(f"{RESULTS}/openwakeword"),
    log:
        f"{RESULTS}/logs/export_openwakeword.log",
    params:
        pairs=[[s, l] for s in SPLITS for l in TRAINING_LABELS],
        # the one export key its files depend on: the whole section would rerun it (every
        # clip a WAV file) when microWakeWord's trainer settings change
        model_name=config["export"]["openwakeword_model_name"],
    conda:
        "../envs/split.yaml"
    script:
        "../scripts/export_openwakeword.py"
