"""Counter-based random numbers: SplitMix64's finaliser, shared by every seeded draw.

wakeprep keeps no generator state from item to item. A draw is ``mix64`` of a key built
from the seed and what the draw is for (clip, copy, mask...), so it does not depend on
batch sizes, devices or the order of work. ``docs/augment.md`` shows how rule augment
builds its keys; :mod:`wakeprep.windows` and :mod:`wakeprep.waveaug.draws` build theirs
the same way.
"""

from __future__ import annotations

import numpy as np

#: SplitMix64's step (the golden ratio times 2**64), added between successive keys.
GOLDEN = 0x9E3779B97F4A7C15

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_U64 = np.uint64


def mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on a uint64 array (wrapping arithmetic)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> _U64(30))) * _M1
        z = (z ^ (z >> _U64(27))) * _M2
        return z ^ (z >> _U64(31))
