from wakeprep.logs import script_logging
from wakeprep.openwakeword import export_openwakeword

with script_logging(snakemake.log[0]):
    export_openwakeword(
        {tuple(k): p for k, p in zip(snakemake.params.pairs, snakemake.input)},
        snakemake.output[0],
        model_name=snakemake.params.model_name,
    )
