from wakeprep.logs import script_logging
from wakeprep.waveaug.job import list_parts

with script_logging(snakemake.log[0]):
    list_parts(snakemake.input.plan, snakemake.input.parts, snakemake.output.parts)
