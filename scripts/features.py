from wakeprep.features import FeatureSettings
from wakeprep.logs import script_logging
from wakeprep.shards import features_shard

with script_logging(snakemake.log[0]):
    settings = FeatureSettings.from_config(snakemake.config["features"])
    assert settings.pad_ms == snakemake.params.pad_ms
    features_shard(snakemake.input.audio, snakemake.output.features, settings)
