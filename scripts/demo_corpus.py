import logging
import os

from wakeprep.demo import make_demo_corpus
from wakeprep.logs import script_logging

with script_logging(snakemake.log[0]):
    p = snakemake.params
    folder, marker = os.path.split(snakemake.output[0])  # the marker file inside the demo folder
    counts = make_demo_corpus(folder, seed=p.seed, takes=p.takes, marker=marker)
    logging.getLogger("wakeprep").info("demo corpus: %s", counts)
