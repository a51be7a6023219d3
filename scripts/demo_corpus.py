import logging

from wakeprep.demo import make_demo_corpus
from wakeprep.logs import script_logging

with script_logging(snakemake.log[0]):
    counts = make_demo_corpus(snakemake.output[0], seed=snakemake.params.seed, takes=snakemake.params.takes)
    logging.getLogger("wakeprep").info("demo corpus: %s", counts)
