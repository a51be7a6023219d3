from pathlib import Path

from wakeprep.logs import script_logging
from wakeprep.report import OUTPUT_KEYS, write_report

with script_logging(snakemake.log[0]):
    p = snakemake.params
    outputs = {k: getattr(snakemake.output, k) for k in OUTPUT_KEYS if k != "features"}
    outputs["features"] = dict(zip(p.labels, snakemake.output.features))
    features = {}
    for (split, label), folder in zip(p.pairs, snakemake.input.assembled):
        features.setdefault(label, {})[split] = str(Path(folder) / "features")
    augmented = dict(zip(p.labels, snakemake.input.augmented))  # empty when augmentation is off
    write_report(
        outputs,
        clips=snakemake.input.clips,
        split_table=snakemake.input.split,
        split_report=snakemake.input.split_report,
        summary=snakemake.input.summary,
        embeddings=snakemake.input.embeddings,
        features=features,
        augmented=augmented,
        benchmarks=p.benchmarks,
        seed=p.seed,
    )
