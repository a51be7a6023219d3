from wakeprep.embed import EmbedSettings, embed_shard, exit_without_teardown
from wakeprep.logs import script_logging

with script_logging(snakemake.log[0]):
    embed_shard(snakemake.input.audio, snakemake.output.embeddings,
                EmbedSettings.from_config(snakemake.params.embed), table=snakemake.input.table)
# Done and the log closed: skip torch's teardown at exit (0.4-1.7 s a job).
exit_without_teardown()
