from pathlib import Path

from wakeprep.logs import script_logging
from wakeprep.summary import write_summary

with script_logging(snakemake.log[0]):
    write_summary(
        snakemake.input.tables,
        snakemake.output.clips,
        snakemake.output.summary,
        snakemake.output.json,
        split_table=snakemake.input.split,
        split_report=snakemake.input.split_report,
        windows=[Path(p, "windows.json") for p in snakemake.input.windows],
        ambient_labels=snakemake.params.ambient_labels,
        corpora=snakemake.params.corpora,
        augment_audio={tuple(k): p for k, p in zip(snakemake.params.augment_audio_pairs, snakemake.input.augment_audio)},
    )
