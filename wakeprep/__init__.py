"""wakeprep: the library behind the wakeprep Snakemake workflow.

Modules, in the order the workflow uses them:

- :mod:`wakeprep.config`: config validation (schema defaults, then the checks across keys)
- :mod:`wakeprep.corpus`: corpus scanning, clip ids, shard manifests
- :mod:`wakeprep.demo`, :mod:`wakeprep.demo_resources`: the demo corpus and its noise and
  room impulse response sets
- :mod:`wakeprep.audio`: decoding, downmixing, resampling, checking one file
- :mod:`wakeprep.vad`: where speech is in a clip
- :mod:`wakeprep.shards`, :mod:`wakeprep.featurecache`: per-shard steps (convert, features),
  and the features a convert job computes for rule features to take over
- :mod:`wakeprep.features`, :mod:`wakeprep.frontend`: microWakeWord's 40-bin features
  (a C or numba kernel on the CPU, CUDA kernels, and the reference)
- :mod:`wakeprep.embed`: speaker embeddings
- :mod:`wakeprep.cluster`, :mod:`wakeprep.split`: speaker groups and the train/validation/test split
- :mod:`wakeprep.assemble`: per-split, per-label stores
- :mod:`wakeprep.windows`: fixed-length training windows
- :mod:`wakeprep.augment`: SpecAugment of feature stores
- :mod:`wakeprep.waveaug`: waveform augmentation (microWakeWord's chain)
- :mod:`wakeprep.export`, :mod:`wakeprep.ninja`: the microWakeWord export and its
  ``mmap_ninja`` writer; :mod:`wakeprep.openwakeword`: the openWakeWord export
- :mod:`wakeprep.table`, :mod:`wakeprep.summary`, :mod:`wakeprep.stats`: clip tables, the
  run summary and its statistics
- :mod:`wakeprep.report`: the report's sections (plots and tables)
- :mod:`wakeprep.results`: what ``results/`` holds, stale paths, the index
- :mod:`wakeprep.dataset`: the stores as training batches
- :mod:`wakeprep.store`, :mod:`wakeprep.fileio`, :mod:`wakeprep.logs`, :mod:`wakeprep.rng`:
  ragged memory-mapped stores, atomic file writes, script logging, the counter-based random
  numbers
"""

__version__ = "0.1.0"
