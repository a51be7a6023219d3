"""Waveform augmentation: microWakeWord's chain on batches of fixed-length windows.

``settings``  names and defaults (as microWakeWord's ``Augmentation``)
``draws``     counter-based parameters of every copy, keyed on (seed, window, copy, transform)
``chain``     the transforms on a dense [B, N] batch, one code for NumPy and CuPy
``banks``     noise and RIR sets (clips of corpora, per split) and their checks
``job``       store to store: windows -> augmented copies -> features, in parts

See ``docs/augment_audio.md``.
"""

from .banks import AugmentInputError, ClipSet
from .chain import Backend, apply_chain
from .draws import ChainParams, clip_hash, draw_params
from .job import augment_audio_part, plan_parts
from .settings import TRANSFORMS, WaveAugSettings

__all__ = [
    "AugmentInputError", "Backend", "ChainParams", "ClipSet", "TRANSFORMS", "WaveAugSettings",
    "apply_chain", "augment_audio_part", "clip_hash", "draw_params", "plan_parts",
]
