from wakeprep.logs import script_logging
from wakeprep.split import SpeakerSettings, SplitSettings, run_cluster_split

with script_logging(snakemake.log[0]):
    run_cluster_split(
        snakemake.input.tables,
        snakemake.input.embeddings,
        snakemake.output.table,
        snakemake.output.report,
        SpeakerSettings.from_config(snakemake.params.speakers),
        SplitSettings.from_config(snakemake.params.split),
        seed=snakemake.params.seed,
    )
