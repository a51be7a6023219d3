from wakeprep.embed import embed_store, exit_without_teardown, load_embedder
from wakeprep.logs import script_logging

with script_logging(snakemake.log[0]):
    cfg = snakemake.params.embed
    embedder = load_embedder(cfg["method"], cfg.get("model"), cfg["device"])
    # torch's thread count changes float rounding, so it comes from the config, not from
    # the threads Snakemake grants (which --cores can lower): same config, same bytes.
    embed_store(snakemake.input.audio, snakemake.output.embeddings, embedder,
                batch_size=cfg["batch_size"], threads=cfg["threads"],
                table=snakemake.input.table, trim=cfg["trim"])
# Done and the log closed: skip torch's teardown at exit (0.4-1.7 s a job).
exit_without_teardown()
