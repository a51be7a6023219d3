from wakeprep.logs import script_logging
from wakeprep.results import clean_and_index

with script_logging(snakemake.log[0]):
    clean_and_index(
        snakemake.params.results,
        snakemake.params.expected,
        snakemake.output[0],
        remove=snakemake.params.remove_stale,
    )
