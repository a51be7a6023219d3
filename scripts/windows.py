from wakeprep.logs import script_logging
from wakeprep.windows import WindowSettings, make_windows

with script_logging(snakemake.log[0]):
    make_windows(
        snakemake.input.assembled,
        snakemake.output[0],
        snakemake.wildcards.split,
        snakemake.wildcards.label,
        WindowSettings.from_config(snakemake.params.windows),
        seed=snakemake.params.seed,
        ambient_labels=tuple(snakemake.params.ambient_labels),
    )
