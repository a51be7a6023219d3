from pathlib import Path

from wakeprep.logs import script_logging
from wakeprep.waveaug import WaveAugSettings, plan_parts

with script_logging(snakemake.log[0]):
    p, w = snakemake.params, snakemake.wildcards
    plan_parts(
        Path(snakemake.input.windows, "audio"),  # the windows rule's folder holds audio/
        snakemake.output.plan,
        part_items=p.section["part_items"],
        settings=WaveAugSettings.from_config(p.section, seed=p.seed),
        split=w.split,
        noise_stores=[Path(f, "audio") for f in snakemake.input.noise],  # assembled folders hold audio/
        rir_stores=[Path(f, "audio") for f in snakemake.input.rir],
        noise_corpora=p.noise_corpora,
        rir_corpora=p.rir_corpora,
    )
