"""Settings of the waveform augmentation, named and defaulted as microWakeWord's.

microWakeWord's ``Augmentation`` class (``microwakeword/audio/augmentation.py``) takes
``augmentation_probabilities`` (one per transform), ``background_min_snr_db``... Our
config section ``augment_audio`` uses the same names, so a user copies them over one to
one. Defaults are those of microWakeWord's training notebook (the class's own defaults,
where they differ, are noted in ``schemas/config.schema.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

#: Transforms in the order microWakeWord's ``Compose`` applies them (``Normalize`` of
#: too-loud audio always runs last). The position is also the transform's number in the
#: random draws' key, so never reorder this list.
TRANSFORMS = (
    "SevenBandParametricEQ",
    "TanhDistortion",
    "PitchShift",
    "BandStopFilter",
    "AddColorNoise",
    "AddBackgroundNoise",
    "Gain",
    "GainTransition",
    "RIR",
)

#: microWakeWord's notebook (``basic_training_notebook.ipynb``): GainTransition is not
#: listed there, so it is off (``augmentation_probabilities.get("GainTransition", 0.0)``).
DEFAULT_PROBABILITIES = {
    "SevenBandParametricEQ": 0.1,
    "TanhDistortion": 0.1,
    "PitchShift": 0.1,
    "BandStopFilter": 0.1,
    "AddColorNoise": 0.1,
    "AddBackgroundNoise": 0.75,
    "Gain": 1.0,
    "GainTransition": 0.0,
    "RIR": 0.5,
}

SAMPLE_RATE = 16000

# Fixed by microWakeWord's Augmentation (not arguments of its class), as audiomentations' defaults.
EQ_GAIN_DB = (-6.0, 6.0)                   # SevenBandParametricEQ(min_gain_db=-6, max_gain_db=6)
EQ_CENTERS = ((42.0, 95.0), (91.0, 204.0), (196.0, 441.0), (421.0, 948.0), (909.0, 2045.0),
              (1957.0, 4404.0), (4216.0, 9486.0))  # low shelf, 5 peaking, high shelf
EQ_Q = ((0.1, 0.999),) + ((0.5, 5.0),) * 5 + ((0.1, 0.999),)
TANH_DISTORTION = (0.0001, 0.10)            # TanhDistortion(min_distortion, max_distortion)
PITCH_SEMITONES = (-3.0, 3.0)               # PitchShift(min_semitones, max_semitones)
BANDSTOP_CENTER_HZ = (200.0, 4000.0)        # BandStopFilter defaults
BANDSTOP_BANDWIDTH_FRACTION = (0.5, 1.99)
BANDSTOP_ROLLOFF_DB = (12, 24)              # multiples of 6 dB/octave: Butterworth order 2..4
COLOR_F_DECAY = (-6.0, 6.0)                 # AddColorNoise(min_f_decay, max_f_decay), dB/octave
COLOR_N_FFT = 128
GAIN_TRANSITION_S = (0.2, 6.0)              # GainTransition(min_duration, max_duration), seconds


@dataclass(frozen=True)
class WaveAugSettings:
    """Everything that decides the augmented audio, besides the noise and RIR sets.

    Build it with :meth:`from_config` from the config section ``augment_audio``.

    Examples
    --------
    >>> s = WaveAugSettings.from_config({"probabilities": {"RIR": 0.0}}, seed=7)
    >>> s.probabilities["RIR"], s.background_min_snr_db
    (0.0, -5.0)
    """

    seed: int = 1234
    probabilities: dict = field(default_factory=lambda: dict(DEFAULT_PROBABILITIES))
    background_min_snr_db: float = -5.0
    background_max_snr_db: float = 10.0
    color_min_snr_db: float = 10.0
    color_max_snr_db: float = 30.0
    min_gain_db: float = -45.0
    max_gain_db: float = 0.0
    min_gain_transition_db: float = -10.0
    max_gain_transition_db: float = 10.0

    @classmethod
    def from_config(cls, section: dict | None, seed: int = 1234) -> "WaveAugSettings":
        """From config section ``augment_audio`` (keys not about the transforms are ignored);
        ``seed`` is the top-level seed, used when the section's ``seed`` is null/absent."""
        section = dict(section or {})
        names = {f.name for f in fields(cls)} - {"seed", "probabilities"}
        kw = {k: float(section[k]) for k in names if k in section and section[k] is not None}
        probs = dict(DEFAULT_PROBABILITIES)
        for k, v in (section.get("probabilities") or {}).items():
            if k not in probs:
                raise ValueError(f"augment_audio.probabilities.{k}: unknown transform (known: {', '.join(TRANSFORMS)})")
            probs[k] = float(v)
        s = section.get("seed")
        out = cls(seed=int(seed if s is None else s), probabilities=probs, **kw)
        out.check()
        return out

    def check(self) -> None:
        """Raise ``ValueError`` naming the first bad value."""
        for k, p in self.probabilities.items():
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"augment_audio.probabilities.{k} must be in [0, 1], got {p}")
        for lo, hi in (("background_min_snr_db", "background_max_snr_db"), ("color_min_snr_db", "color_max_snr_db"),
                       ("min_gain_db", "max_gain_db"), ("min_gain_transition_db", "max_gain_transition_db")):
            if getattr(self, lo) > getattr(self, hi):
                raise ValueError(f"augment_audio.{lo} ({getattr(self, lo)}) must not exceed augment_audio.{hi} ({getattr(self, hi)})")
        if not 0 <= self.seed < 2**64:
            raise ValueError(f"augment_audio.seed must be in [0, 2**64), got {self.seed}")

    def p(self, name: str) -> float:
        return float(self.probabilities.get(name, 0.0))

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}
