from wakeprep.logs import script_logging
from wakeprep.shards import features_shard

with script_logging(snakemake.log[0]):
    features_shard(snakemake.input.audio, snakemake.output.features, pad_ms=snakemake.params.pad_ms)
