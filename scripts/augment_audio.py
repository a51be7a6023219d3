import json
from pathlib import Path

from wakeprep.logs import script_logging
from wakeprep.waveaug import WaveAugSettings, augment_audio_part

with script_logging(snakemake.log[0]):
    p, w = snakemake.params, snakemake.wildcards
    with open(snakemake.input.plan, encoding="utf-8") as f:
        first, stop = json.load(f)["parts"][int(w.part)]
    augment_audio_part(
        Path(snakemake.input.windows, "audio"),  # the windows rule's folder holds audio/
        snakemake.output.part,
        first=first,
        stop=stop,
        repetitions=p.section["repetitions"][w.split],
        settings=WaveAugSettings.from_config(p.section, seed=p.seed),
        split=w.split,
        noise_stores=[Path(f, "audio") for f in snakemake.input.noise],  # assembled folders hold audio/
        rir_stores=[Path(f, "audio") for f in snakemake.input.rir],
        noise_corpora=p.noise_corpora,
        rir_corpora=p.rir_corpora,
        device=p.section["device"],
        batch_items=snakemake.config["augment_audio"]["batch_items"],  # not a param: it cannot change the bytes
    )
