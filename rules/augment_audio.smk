checkpoint augment_audio_plan:
    input:
        windows=lambda w: windows_audio(w.split, w.label),
        noise=lambda w: augment_audio_sets(w.split, "noise")[0],
        rir=lambda w: augment_audio_sets(w.split, "rir")[0],
    output:
        plan=f"{AUGMENT_AUDIO}/plan.json",
    log:
        f"{RESULTS}/logs/augment_audio/{{split}}/{{label}}/plan.log",
    params:
        section=augment_audio_params(),
        seed=config["seed"],
        noise_corpora=lambda w: augment_audio_sets(w.split, "noise")[1],
        rir_corpora=lambda w: augment_audio_sets(w.split, "rir")[1],
    threads: 1
    conda:
        "../envs/augment_audio.yaml"
    script:
        "../scripts/augment_audio_plan.py"


rule augment_audio:
    input:
        plan=f"{AUGMENT_AUDIO}/plan.json",
        windows=lambda w: windows_audio(w.split, w.label),
        noise=lambda w: augment_audio_sets(w.split, "noise")[0],
        rir=lambda w: augment_audio_sets(w.split, "rir")[0],
    output:
        part=directory(f"{AUGMENT_AUDIO}/part-{{part}}"),
    log:
        f"{RESULTS}/logs/augment_audio/{{split}}/{{label}}/part-{{part}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/augment_audio/{{split}}/{{label}}/part-{{part}}.tsv"
    params:
        section=augment_audio_params(),
        seed=config["seed"],
        noise_corpora=lambda w: augment_audio_sets(w.split, "noise")[1],
        rir_corpora=lambda w: augment_audio_sets(w.split, "rir")[1],
    threads: 1
    resources:
        gpu=1 if config["augment_audio"]["device"] == "cuda" else 0,
    conda:
        "../envs/augment_audio.yaml"
    script:
        "../scripts/augment_audio.py"


rule augment_audio_parts:
    input:
        plan=f"{AUGMENT_AUDIO}/plan.json",
        parts=augment_audio_parts,
    output:
        parts=f"{AUGMENT_AUDIO}/parts.json",
    log:
        f"{RESULTS}/logs/augment_audio/{{split}}/{{label}}/parts.log",
    conda:
        "../envs/augment_audio.yaml"
    script:
        "../scripts/augment_audio_parts.py"


rule augment_audio_overview:
    input:
        parts=augment_audio_targets(),
    output:
        overview=f"{RESULTS}/augment_audio/overview.txt",
    log:
        f"{RESULTS}/logs/augment_audio/overview.log",
    params:
        pairs=[p.split("/")[-3:-1] for p in augment_audio_targets()],
    conda:
        "../envs/augment_audio.yaml"
    script:
        "../scripts/augment_audio_overview.py"
