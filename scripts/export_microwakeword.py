from pathlib import Path

from wakeprep.export import ExportSettings, export_microwakeword
from wakeprep.logs import script_logging

with script_logging(snakemake.log[0]):
    export_microwakeword(
        {tuple(k): p for k, p in zip(snakemake.params.pairs, snakemake.input.sources)},
        snakemake.output[0],
        ExportSettings.from_config(snakemake.params.export),
        augmented=dict(zip(snakemake.params.labels, snakemake.input.augmented)),
        waveaug={tuple(k): p for k, p in zip(snakemake.params.waveaug_pairs, snakemake.input.waveaug)},
        window_reports=[Path(p, "windows.json") for p in snakemake.input.windows],
    )
