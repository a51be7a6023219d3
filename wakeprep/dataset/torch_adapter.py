"""PyTorch adapter: a :class:`WakeWordDataset` as a ``torch.utils.data.IterableDataset``.

Each worker of a ``DataLoader`` (and each rank, with ``world_size > 1``) makes a disjoint,
deterministic part of the batches: batch ``k`` of a pass is made by part
``k % (world_size * num_workers)``, where part = ``rank * num_workers + worker``. The
``DataLoader`` takes batches from its workers in turn, so it yields them in the same order as
one process would. Use ``batch_size=None``: the dataset makes the batches.

Examples
--------
>>> loader = DataLoader(TorchBatches(ds, epoch=0), batch_size=None, num_workers=2)  # doctest: +SKIP
>>> for features, labels, clip_ids in loader:                                     # doctest: +SKIP
...     ...
"""

from __future__ import annotations

import numpy as np

try:
    import torch
    from torch.utils.data import IterableDataset, get_worker_info
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"wakeprep.dataset.TorchBatches needs PyTorch ({e}); install it (pip install torch), "
        "or iterate WakeWordDataset.batches() yourself"
    ) from None

from .core import Batch, WakeWordDataset


class TorchBatches(IterableDataset):
    """Batches of a :class:`WakeWordDataset` as PyTorch tensors.

    Parameters
    ----------
    dataset : WakeWordDataset
    epoch : int
        Training epoch to make; change it with :meth:`set_epoch` before each pass (the
        workers get a fresh copy of this object at every ``iter(loader)`` unless
        ``persistent_workers`` is on).
    evaluate : bool
        Make :meth:`WakeWordDataset.eval_batches` (every item once) instead of training batches.
    shuffle : bool
        Shuffle the evaluation pass (training batches are always shuffled).
    rank, world_size : int
        For distributed training: this process's part of the batches.
    weights : bool
        Yield ``(features, labels, weights, clip_ids)``: ``weights`` are the sets' penalty weights.

    Yields
    ------
    tuple
        ``(features, labels, clip_ids)``: ``features`` a float32 (or uint16 codes) tensor
        ``[B, frames, bins]``, ``labels`` float32 ``[B]``, ``clip_ids`` a list of str.
    """

    def __init__(self, dataset: WakeWordDataset, *, epoch: int = 0, evaluate: bool = False, shuffle: bool = False,
                 rank: int = 0, world_size: int = 1, weights: bool = False):
        super().__init__()
        if not isinstance(dataset, WakeWordDataset):
            raise TypeError(f"TorchBatches needs a WakeWordDataset, got {type(dataset).__name__}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.dataset = dataset
        self.epoch = int(epoch)
        self.evaluate = bool(evaluate)
        self.shuffle = bool(shuffle)
        self.rank, self.world_size = int(rank), int(world_size)
        self.weights = bool(weights)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Batches this rank yields in one pass (all its workers together)."""
        total = self.dataset.eval_batches_count() if self.evaluate else self.dataset.batches_per_epoch
        return len(range(self.rank, total, self.world_size))

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        aug = self.dataset.augment
        if info is not None and aug is not None and aug.device == "cuda" and not self.evaluate:
            raise RuntimeError(
                "SpecAugment on the GPU cannot run in DataLoader worker processes: use num_workers=0, or "
                "make uint16 batches in the workers (WakeWordDataset(dtype='uint16'), augment=None) and call "
                "SpecAugment(device='cuda').apply(codes, epoch=..., first=...) on the device in the training loop"
            )
        part, parts = self.rank * workers + worker, self.world_size * workers
        if self.evaluate:
            it = self.dataset.eval_batches(part=part, parts=parts, shuffle=self.shuffle, epoch=self.epoch)
        else:
            it = self.dataset.batches(self.epoch, part=part, parts=parts)
        for batch in it:
            yield self._tensors(batch)

    def _tensors(self, batch: Batch):
        f = batch.features
        features = torch.from_numpy(f) if isinstance(f, np.ndarray) else torch.from_dlpack(f)
        labels = torch.from_numpy(batch.labels)
        if self.weights:
            return features, labels, torch.from_numpy(batch.weights), batch.clip_ids
        return features, labels, batch.clip_ids
