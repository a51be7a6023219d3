from wakeprep.logs import script_logging
from wakeprep.waveaug.job import write_overview

with script_logging(snakemake.log[0]):
    pairs = [tuple(p) for p in snakemake.params.pairs]
    write_overview(dict(zip(pairs, snakemake.input.parts)), snakemake.output.overview)
