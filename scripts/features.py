from wakeprep.featurecache import features_job
from wakeprep.logs import script_logging

with script_logging(snakemake.log[0]):
    features_job(
        snakemake.input.made,
        snakemake.input.audio,
        snakemake.output.features,
        snakemake.config["features"],
        snakemake.params.pad_ms,
    )
