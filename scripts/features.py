from wakeprep.features import FeatureSettings
from wakeprep.logs import script_logging
from wakeprep.shards import features_shard

with script_logging(snakemake.log[0]):
    features_shard(snakemake.input.audio, snakemake.output.features, FeatureSettings.from_config(snakemake.params.features))
