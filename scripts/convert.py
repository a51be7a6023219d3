from wakeprep.audio import AudioSettings
from wakeprep.logs import script_logging
from wakeprep.shards import convert_shard
from wakeprep.vad import VadSettings

with script_logging(snakemake.log[0]):
    convert_shard(
        snakemake.input.manifest,
        snakemake.params.corpus,
        AudioSettings.from_config(snakemake.params.audio),
        snakemake.output.audio,
        snakemake.output.table,
        VadSettings.from_config(snakemake.params.vad),
    )
