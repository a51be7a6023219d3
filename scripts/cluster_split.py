from wakeprep.logs import script_logging
from wakeprep.split import run_cluster_split

with script_logging(snakemake.log[0]):
    sp, sk = snakemake.params.split, snakemake.params.speakers
    run_cluster_split(
        snakemake.input.tables,
        snakemake.input.embeddings,
        snakemake.output.table,
        snakemake.output.report,
        seed=snakemake.params.seed,
        threshold=sk["threshold"],
        neighbors=sk["neighbors"],
        ratios=sp["ratios"],
        cap=sp["max_train_clips_per_group"],
        cap_strategy=sp["cap_strategy"],
        leakage_similarity=sp["leakage_similarity"],
        min_speech_s=sk["min_speech_s"],
        tolerance=sp["tolerance"],
    )
