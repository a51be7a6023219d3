from wakeprep.assemble import assemble
from wakeprep.logs import script_logging

with script_logging(snakemake.log[0]):
    assemble(
        snakemake.input.split,
        snakemake.wildcards.split,
        snakemake.wildcards.label,
        snakemake.input.features,
        snakemake.input.audio,
        snakemake.output[0],
        seed=snakemake.params.seed,
        tables=snakemake.input.tables,
    )
