from wakeprep.embed import embed_store, load_embedder
from wakeprep.logs import script_logging

with script_logging(snakemake.log[0]):
    cfg = snakemake.params.embed
    embedder = load_embedder(cfg["method"], cfg.get("model"), cfg["device"])
    embed_store(snakemake.input.audio, snakemake.output.embeddings, embedder,
                batch_size=cfg["batch_size"], threads=snakemake.threads)
