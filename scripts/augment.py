from pathlib import Path

from wakeprep.augment import AugmentSettings, augment_store
from wakeprep.logs import script_logging

with script_logging(snakemake.log[0]):
    augment_store(
        Path(snakemake.input.assembled, "features"),  # rule assemble's folder holds features/, audio/, clips.tsv
        snakemake.output.augmented,
        AugmentSettings.from_config(snakemake.params.augment, seed=snakemake.params.seed or 0),
    )
