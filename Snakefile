# wakeprep: raw audio corpora to wake-word training data.
# Stages: convert -> features -> embed (per shard); cluster_split (global);
# assemble (per split and label); windows, export, augment; summary; index of results/. See README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/demo.smk"
include: "rules/convert.smk"
include: "rules/features.smk"
include: "rules/speakers.smk"
include: "rules/assemble.smk"
include: "rules/windows.smk"
include: "rules/export.smk"
include: "rules/augment.smk"
include: "rules/augment_audio.smk"
include: "rules/summary.smk"
include: "rules/report.smk"
include: "rules/results.smk"


rule all:
    input:
        all_targets,
    default_target: True


onstart:
    remove_stale_results()


onsuccess:
    print_summary()
