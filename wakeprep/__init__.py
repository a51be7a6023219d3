"""wakeprep: the library behind the wakeprep Snakemake workflow.

Modules: :mod:`wakeprep.store` (ragged memory-mapped stores), :mod:`wakeprep.corpus`
(scanning, clip ids, shard manifests), :mod:`wakeprep.audio` (decode and resample),
:mod:`wakeprep.features` (micro-frontend features), :mod:`wakeprep.shards` (per-shard
steps), :mod:`wakeprep.table` and :mod:`wakeprep.summary` (clip tables and the summary).
"""

__version__ = "0.1.0"
