from pathlib import Path

from wakeprep.augment import augment_store
from wakeprep.logs import script_logging

with script_logging(snakemake.log[0]):
    p = snakemake.params
    augment_store(
        Path(snakemake.input.assembled, "features"),  # rule assemble's folder holds features/, audio/, clips.tsv
        snakemake.output.augmented,
        copies=p.copies,
        time_masks=p.time_masks,
        time_mask_max=p.time_mask_max,
        freq_masks=p.freq_masks,
        freq_mask_max=p.freq_mask_max,
        mask_value=p.mask_value,
        seed=p.seed,
        device=p.device,
        batch_items=p.batch_items,
        shard_items=p.shard_items,
    )
