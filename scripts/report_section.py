from wakeprep.logs import script_logging
from wakeprep.report import write_section

with script_logging(snakemake.log[0]):
    write_section(snakemake.params.section, dict(snakemake.output.items()), **dict(snakemake.input.items()),
                  **snakemake.params.options)
