# wakeprep: raw audio corpora to wake-word training data.
# Stages: convert -> features (per shard); summary (global). See README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/convert.smk"
include: "rules/features.smk"
include: "rules/summary.smk"


rule all:
    input:
        all_targets,
    default_target: True


onsuccess:
    print_summary()
