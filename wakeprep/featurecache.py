"""Features the convert job computed, taken over by the features job.

With ``features.device: cpu`` (the default) the convert job computes each clip's features
while the clip's audio is in memory, into ``{shard}/features_convert`` (a ragged store,
:mod:`wakeprep.store`). Rule features then only has to put them in place as
``{shard}/features``: :func:`take_over` hard-links the store's files (copies them where the
file system has no hard links), which costs a fraction of a second instead of a second
of a new process reading the audio store back and running the frontend.

The two rules stay separate so that Snakemake still reruns only what is stale: a changed
``features.pad_ms`` reruns the features jobs, not the conversions (nor the speaker
embeddings that depend on the audio). The convert job reads ``pad_ms`` from the config
without declaring it, so its store may hold features of an older ``pad_ms``: that store
is a cache, used only when its ``pad_ms`` and its clip ids are those the features job
wants; otherwise the features job computes the features from the audio store, as it
does on the GPU (``features.device: cuda``, where the convert job writes an empty store
that says so). Both ways give the same bytes (``tests/test_convert.py``).

Standard library only: the features job's usual path imports neither NumPy nor numba.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from .fileio import atomic_dir

log = logging.getLogger("wakeprep")

#: The ragged store's metadata and id files (:data:`wakeprep.store.META`, :data:`wakeprep.store.IDS`).
META, IDS = "meta.json", "ids.txt"


def usable(made, audio, pad_ms) -> str:
    """Why the store ``made`` cannot stand for the features of audio store ``audio`` with
    ``pad_ms``; ``""`` when it can."""
    made, audio = Path(made), Path(audio)
    try:
        attrs = json.loads((made / META).read_text(encoding="utf-8")).get("attrs", {})
        ids_made = (made / IDS).read_bytes()
        ids_audio = (audio / IDS).read_bytes()
    except (OSError, ValueError) as e:
        return f"cannot read it ({e})"
    if "pad_ms" not in attrs:
        return attrs.get("note") or "it holds no features"
    if attrs["pad_ms"] != pad_ms:
        return f"made with pad_ms {attrs['pad_ms']}, not {pad_ms}"
    if ids_made != ids_audio:
        return "its clips are not those of the audio store"
    return ""


def take_over(made, audio, out, pad_ms) -> bool:
    """Put the convert job's features ``made`` in place as ``out`` when :func:`usable`;
    returns whether it did (when False, compute the features from ``audio``)."""
    why = usable(made, audio, pad_ms)
    if why:
        log.info("features: computing them from %s: the convert job's %s cannot be used: %s", audio, made, why)
        return False
    linked = True
    with atomic_dir(out) as tmp:
        for f in sorted(Path(made).iterdir()):
            try:
                os.link(f, tmp / f.name)
            except OSError:
                shutil.copy2(f, tmp / f.name)
                linked = False
    log.info("features: took over %s as %s (%s)", made, out, "hard links" if linked else "copies")
    return True


def features_job(made, audio, out, section: dict | None, pad_ms) -> None:
    """Rule features: take over the convert job's features ``made`` (:func:`take_over`), or
    compute them from the audio store with the config's ``features`` ``section``."""
    if take_over(made, audio, out, pad_ms):
        return
    from .features import FeatureSettings
    from .shards import features_shard

    settings = FeatureSettings.from_config(section)
    if settings.pad_ms != pad_ms:
        raise ValueError(f"features: the rule's pad_ms {pad_ms} is not the config's {settings.pad_ms}")
    features_shard(audio, out, settings)
