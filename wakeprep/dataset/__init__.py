"""Read the workflow's feature stores as training batches (NumPy only; adapters optional).

``WakeWordDataset`` yields padded, weighted, seeded batches ``(features[B, T, 40] float32,
labels[B], clip_ids)`` straight from the ragged stores, with microWakeWord's length
strategies, an evaluation pass that reads each item once, and optional SpecAugment on the
fly (CPU or GPU, same bytes). ``docs/dataset.md`` has the details.

Adapters import their framework only when used:

- ``wakeprep.dataset.torch_adapter.TorchBatches``: a PyTorch ``IterableDataset``;
- ``wakeprep.dataset.tf_adapter.tf_dataset``: a ``tf.data.Dataset`` built with ``from_generator``.

Examples
--------
>>> from wakeprep.dataset import WakeWordDataset                          # doctest: +SKIP
>>> ds = WakeWordDataset.from_results("results", frames=150, batch_size=256, seed=1)
>>> for features, labels, clip_ids in ds.batches(epoch=0):
...     loss = train_step(features, labels)
"""

from .core import STRATEGIES, Batch, FeatureSet, SpecAugment, WakeWordDataset

__all__ = ["STRATEGIES", "Batch", "FeatureSet", "SpecAugment", "WakeWordDataset", "TorchBatches", "tf_dataset"]


def __getattr__(name):
    if name == "TorchBatches":
        from .torch_adapter import TorchBatches

        return TorchBatches
    if name == "tf_dataset":
        from .tf_adapter import tf_dataset

        return tf_dataset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
