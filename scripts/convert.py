from wakeprep.audio import AudioSettings
from wakeprep.logs import script_logging
from wakeprep.shards import FeatureSettings, convert_shard  # (not from wakeprep.features: its GPU path is not this env's)
from wakeprep.vad import VadSettings

with script_logging(snakemake.log[0]):
    convert_shard(
        snakemake.input.manifest,
        snakemake.params.corpus,
        AudioSettings.from_config(snakemake.params.audio),
        snakemake.output.audio,
        snakemake.output.table,
        VadSettings.from_config(snakemake.params.vad),
        # features.pad_ms is not a parameter of this rule (rule features checks what it
        # takes over), so changing it reruns the features jobs only
        FeatureSettings.from_config(snakemake.config["features"]),
        snakemake.output.made,
    )
