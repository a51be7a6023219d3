"""TensorFlow adapter: a :class:`WakeWordDataset` as a ``tf.data.Dataset`` (``from_generator``).

Examples
--------
>>> data = tf_dataset(ds, epoch=0).prefetch(2)          # doctest: +SKIP
>>> for features, labels, clip_ids in data:             # doctest: +SKIP
...     ...
"""

from __future__ import annotations

import numpy as np

from .core import WakeWordDataset


def _tensorflow():
    try:
        import tensorflow as tf
    except ImportError as e:
        raise ImportError(
            f"wakeprep.dataset.tf_dataset needs TensorFlow ({e}); install it (pip install tensorflow), "
            "or iterate WakeWordDataset.batches() yourself"
        ) from None
    return tf


def tf_dataset(dataset: WakeWordDataset, *, epoch: int = 0, evaluate: bool = False, shuffle: bool = False,
               weights: bool = False):
    """A ``tf.data.Dataset`` of the batches of one pass.

    Elements are ``(features, labels, clip_ids)`` (``(features, labels, weights, clip_ids)``
    with ``weights=True``): ``features`` float32 (or uint16) ``[B, frames, bins]``,
    ``labels`` and ``weights`` float32 ``[B]``, ``clip_ids`` string ``[B]``. Build one per
    epoch (``epoch`` keys the draws), or ``.repeat()`` one pass for evaluation.
    SpecAugment on the GPU is copied back to the host here (TensorFlow reads NumPy).
    """
    if not isinstance(dataset, WakeWordDataset):
        raise TypeError(f"tf_dataset needs a WakeWordDataset, got {type(dataset).__name__}")
    tf = _tensorflow()
    T, bins = dataset.frames, dataset.bins
    fdtype = tf.float32 if dataset.dtype == "float32" else tf.uint16

    def generate():
        it = (dataset.eval_batches(shuffle=shuffle, epoch=epoch) if evaluate else dataset.batches(epoch))
        for b in it:
            f = b.features if isinstance(b.features, np.ndarray) else b.features.get()
            ids = np.array(b.clip_ids, dtype=object)
            yield (f, b.labels, b.weights, ids) if weights else (f, b.labels, ids)

    spec = [tf.TensorSpec((None, T, bins), fdtype), tf.TensorSpec((None,), tf.float32)]
    if weights:
        spec.append(tf.TensorSpec((None,), tf.float32))
    spec.append(tf.TensorSpec((None,), tf.string))
    n = dataset.eval_batches_count() if evaluate else dataset.batches_per_epoch
    data = tf.data.Dataset.from_generator(generate, output_signature=tuple(spec))
    return data.apply(tf.data.experimental.assert_cardinality(n))  # Keras knows the epoch's length
