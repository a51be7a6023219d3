"""Rule augment's settings: the config section ``augment``, read and checked once."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from .masks import AugmentParams, mask_code

DEVICES = ("cuda", "cpu")


@dataclass(frozen=True)
class AugmentSettings:
    """How rule augment runs: the ``augment`` section of ``config.yaml``, whose schema
    (``schemas/config.schema.yaml``) describes every key; the defaults here are its defaults.

    Build it with :meth:`from_config`; every value is checked when the object is made, and a
    bad one raises ``ValueError`` naming its key. :attr:`params` is the mask spec that the
    kernel and the CPU path take.

    Examples
    --------
    >>> s = AugmentSettings.from_config({"copies": 3, "seed": None, "device": "cpu"}, seed=7)
    >>> s.copies, s.seed, s.params.fill
    (3, 7, 0)
    """

    copies: int = 2
    time_masks: int = 2
    time_mask_max: int = 10
    freq_masks: int = 2
    freq_mask_max: int = 5
    mask_value: float = 0.0
    seed: int = 1234
    device: str = "cuda"
    batch_items: int = 0
    shard_items: int = 100_000

    @classmethod
    def from_config(cls, section: dict | None, seed: int = 1234) -> "AugmentSettings":
        """Settings from config section ``augment`` (keys left out take their defaults;
        ``enabled`` is the workflow's). ``seed`` is the top-level seed, used when the
        section's ``seed`` is null or absent."""
        section = dict(section or {})
        section.pop("enabled", None)
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - names)
        if unknown:
            raise ValueError(f"augment.{unknown[0]} is not a setting of rule augment (see schemas/config.schema.yaml)")
        if section.get("seed") is None:
            section["seed"] = seed
        return cls(**section)

    def __post_init__(self) -> None:
        for name in ("copies", "time_masks", "time_mask_max", "freq_masks", "freq_mask_max", "seed",
                     "batch_items", "shard_items"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"augment.{name} must be an integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if isinstance(self.mask_value, bool) or not isinstance(self.mask_value, (int, float, np.number)):
            raise ValueError(f"augment.mask_value must be a number, got {self.mask_value!r}")
        object.__setattr__(self, "mask_value", float(self.mask_value))
        if self.device not in DEVICES:
            raise ValueError(f"augment.device must be 'cuda' or 'cpu', got {self.device!r}")
        if self.batch_items < 0:
            raise ValueError(f"augment.batch_items must be an integer >= 0, got {self.batch_items!r}")
        if self.shard_items < 1:
            raise ValueError(f"augment.shard_items must be a positive integer, got {self.shard_items!r}")
        self.params.check()

    @property
    def params(self) -> AugmentParams:
        """The mask spec: the mask keys, with ``mask_value`` as its uint16 code."""
        return AugmentParams(
            copies=self.copies, time_masks=self.time_masks, time_mask_max=self.time_mask_max,
            freq_masks=self.freq_masks, freq_mask_max=self.freq_mask_max, fill=mask_code(self.mask_value),
            seed=self.seed,
        )

    def to_dict(self) -> dict:
        return asdict(self)
