import logging

from wakeprep.assemble import export_microwakeword
from wakeprep.logs import script_logging

with script_logging(snakemake.log[0]):
    folders = {tuple(k): p for k, p in zip(snakemake.params.pairs, snakemake.input)}
    counts = export_microwakeword(folders, snakemake.output[0])
    logging.getLogger("wakeprep").info("exported %s", counts)
