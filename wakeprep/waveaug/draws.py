"""Counter-based random parameters of every augmented copy, drawn on the host.

Each number is a pure function of ``(seed, clip, copy, transform, draw)``: SplitMix64's
finaliser (:func:`wakeprep.augment.mix64`) applied to a key built from them, as the
SpecAugment rule does. Nothing depends on the batch a window falls in, on the device,
or on how many windows there are, so the CPU and GPU paths (which both take these
arrays) use exactly the same parameters, and a rerun the same bytes::

    clip    = first 8 bytes (little endian) of BLAKE2b(window id, digest_size=8)
    k0      = mix64(seed + G)                 G = 0x9E3779B97F4A7C15
    k1      = mix64(k0 ^ clip)
    k2      = mix64(k1 ^ copy)
    kt      = mix64(k2 + (t + 1) * G)         t: the transform's position in TRANSFORMS,
                                              100 for the samples of the coloured noise
    h(m)    = mix64(kt + (m + 1) * G)         draw m of transform t (m = 0: the coin flip)
    u(m)    = (h >> 11) * 2**-53              uniform in [0, 1)
    uniform(a, b) = a + u * (b - a);  randint(a, b) = a + floor(u * (b - a + 1))  (inclusive)
    coin    = u(0) < p

The parameters are drawn for every copy whether or not its coin says apply (so
changing one probability changes no other transform's numbers), and kept in the
parameter table with the coin's outcome.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..augment import mix64
from .settings import (
    BANDSTOP_BANDWIDTH_FRACTION, BANDSTOP_CENTER_HZ, BANDSTOP_ROLLOFF_DB, COLOR_F_DECAY, EQ_CENTERS, EQ_GAIN_DB,
    EQ_Q, GAIN_TRANSITION_S, PITCH_SEMITONES, SAMPLE_RATE, TANH_DISTORTION, TRANSFORMS, WaveAugSettings,
)

_G = np.uint64(0x9E3779B97F4A7C15)
#: Transform number of the coloured noise's sample stream.
COLOR_SAMPLES = 100


def clip_hash(ids) -> np.ndarray:
    """uint64 hash of each id (BLAKE2b, 8 bytes, little endian)."""
    return np.array(
        [int.from_bytes(hashlib.blake2b(i.encode("utf-8"), digest_size=8).digest(), "little") for i in ids],
        dtype=np.uint64,
    )


def copy_keys(seed: int, clips: np.ndarray, copies: np.ndarray) -> np.ndarray:
    """``k2`` of each (clip hash, copy) pair (arrays of equal length)."""
    with np.errstate(over="ignore"):
        k0 = mix64(np.array([seed], dtype=np.uint64) + _G)
        k1 = mix64(k0 ^ np.asarray(clips, dtype=np.uint64))
        return mix64(k1 ^ np.asarray(copies, dtype=np.uint64))


def transform_key(k2: np.ndarray, t: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        return mix64(k2 + np.uint64(t + 1) * _G)


def uniforms(kt: np.ndarray, m: int) -> np.ndarray:
    """``u(m)`` for every key: float64 in [0, 1)."""
    with np.errstate(over="ignore"):
        h = mix64(kt + np.uint64(m + 1) * _G)
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _uniform(u, a, b):
    return a + u * (b - a)


def _randint(u, a, b):
    """Inclusive; ``a`` and ``b`` may be arrays."""
    return (np.asarray(a, dtype=np.int64) + np.floor(u * (np.asarray(b, dtype=np.float64) - a + 1)).astype(np.int64))


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


@dataclass
class ChainParams:
    """Parameters of ``B`` augmented copies (rows), as arrays of length ``B``.

    ``apply[name]`` is each transform's coin; the other fields hold the drawn values
    (drawn for every row, used only where applied). ``noise_index`` and ``rir_index``
    are positions in the noise and RIR sets (-1 when the set is empty).
    """

    rows: int
    keys: np.ndarray  # k2 of each row (uint64)
    apply: dict
    eq_center_hz: np.ndarray  # [B, 7]
    eq_gain_db: np.ndarray    # [B, 7]
    eq_q: np.ndarray          # [B, 7]
    tanh_distortion: np.ndarray
    pitch_semitones: np.ndarray
    bandstop_order: np.ndarray
    bandstop_center_hz: np.ndarray
    bandstop_bandwidth_hz: np.ndarray
    color_snr_db: np.ndarray
    color_f_decay: np.ndarray
    background_snr_db: np.ndarray
    noise_index: np.ndarray
    noise_offset: np.ndarray
    gain_db: np.ndarray
    transition_samples: np.ndarray
    transition_t0: np.ndarray
    transition_start_db: np.ndarray
    transition_end_db: np.ndarray
    rir_index: np.ndarray

    def take(self, rows) -> "ChainParams":
        """The parameters of a subset of rows."""
        out = {}
        for k, v in self.__dict__.items():
            if k == "rows":
                continue
            out[k] = {n: a[rows] for n, a in v.items()} if isinstance(v, dict) else v[rows]
        return ChainParams(rows=len(out["keys"]), **out)


def _coins(settings: WaveAugSettings, keys: dict, n_noise: int, n_rirs: int) -> dict:
    apply = {name: uniforms(keys[name], 0) < settings.p(name) for name in TRANSFORMS}
    # as microWakeWord: without noise or impulse responses the transform is an identity
    if n_noise == 0:
        apply["AddBackgroundNoise"][:] = False
    if n_rirs == 0:
        apply["RIR"][:] = False
    return apply


def _eq_draws(k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    centre, gain, q = (np.empty((k.size, 7)) for _ in range(3))
    for j in range(7):
        lo, hi = EQ_CENTERS[j]
        centre[:, j] = mel_to_hz(_uniform(uniforms(k, 1 + 3 * j), hz_to_mel(lo), hz_to_mel(hi)))
        gain[:, j] = _uniform(uniforms(k, 2 + 3 * j), *EQ_GAIN_DB)
        q[:, j] = _uniform(uniforms(k, 3 + 3 * j), *EQ_Q[j])
    return centre, gain, q


def _bandstop_draws(k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = _randint(uniforms(k, 1), BANDSTOP_ROLLOFF_DB[0] // 6, BANDSTOP_ROLLOFF_DB[1] // 6)
    centre = mel_to_hz(_uniform(uniforms(k, 2), hz_to_mel(BANDSTOP_CENTER_HZ[0]), hz_to_mel(BANDSTOP_CENTER_HZ[1])))
    return order, centre, centre * _uniform(uniforms(k, 3), *BANDSTOP_BANDWIDTH_FRACTION)


def _noise_draws(k: np.ndarray, noise_lengths, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    noise_lengths = np.asarray(noise_lengths, dtype=np.int64)
    if not noise_lengths.size:
        return np.full(k.size, -1, dtype=np.int64), np.zeros(k.size, dtype=np.int64)
    index = _randint(uniforms(k, 2), 0, noise_lengths.size - 1)
    span = np.maximum(noise_lengths[index] - n_samples, 0)
    return index, _randint(uniforms(k, 3), 0, span)


def _transition_draws(settings: WaveAugSettings, k: np.ndarray, n_samples: int) -> dict:
    lo, hi = round(GAIN_TRANSITION_S[0] * SAMPLE_RATE), round(GAIN_TRANSITION_S[1] * SAMPLE_RATE)
    fade = np.maximum(3, _randint(uniforms(k, 1), lo, hi))
    a, b = settings.min_gain_transition_db, settings.max_gain_transition_db
    return {"transition_samples": fade, "transition_t0": _randint(uniforms(k, 2), -fade + 2, n_samples - 2),
            "transition_start_db": _uniform(uniforms(k, 3), a, b), "transition_end_db": _uniform(uniforms(k, 4), a, b)}


def draw_params(
    settings: WaveAugSettings,
    clips: np.ndarray,
    copies: np.ndarray,
    n_samples: int,
    noise_lengths: np.ndarray,
    n_rirs: int,
) -> ChainParams:
    """Draw the parameters of every (clip, copy) row.

    Parameters
    ----------
    settings : WaveAugSettings
    clips : uint64 array
        :func:`clip_hash` of each row's window id.
    copies : int array
        Each row's copy number.
    n_samples : int
        Window length in samples.
    noise_lengths : int array
        Length in samples of each clip of the noise set (may be empty).
    n_rirs : int
        Clips in the RIR set.
    """
    k2 = copy_keys(settings.seed, clips, copies)
    B = k2.size
    keys = {name: transform_key(k2, t) for t, name in enumerate(TRANSFORMS)}
    s = settings
    order, bs_centre, bs_width = _bandstop_draws(keys["BandStopFilter"])
    noise_index, noise_offset = _noise_draws(keys["AddBackgroundNoise"], noise_lengths, n_samples)
    centre, gain, q = _eq_draws(keys["SevenBandParametricEQ"])
    return ChainParams(
        rows=B, keys=k2, apply=_coins(s, keys, len(noise_lengths), n_rirs),
        eq_center_hz=centre, eq_gain_db=gain, eq_q=q,
        tanh_distortion=_uniform(uniforms(keys["TanhDistortion"], 1), *TANH_DISTORTION),
        pitch_semitones=_uniform(uniforms(keys["PitchShift"], 1), *PITCH_SEMITONES),
        bandstop_order=order, bandstop_center_hz=bs_centre, bandstop_bandwidth_hz=bs_width,
        color_snr_db=_uniform(uniforms(keys["AddColorNoise"], 1), s.color_min_snr_db, s.color_max_snr_db),
        color_f_decay=_uniform(uniforms(keys["AddColorNoise"], 2), *COLOR_F_DECAY),
        background_snr_db=_uniform(uniforms(keys["AddBackgroundNoise"], 1), s.background_min_snr_db, s.background_max_snr_db),
        noise_index=noise_index, noise_offset=noise_offset,
        gain_db=_uniform(uniforms(keys["Gain"], 1), s.min_gain_db, s.max_gain_db),
        **_transition_draws(s, keys["GainTransition"], n_samples),
        rir_index=_randint(uniforms(keys["RIR"], 1), 0, n_rirs - 1) if n_rirs else np.full(B, -1, dtype=np.int64),
    )


def param_columns() -> list[str]:
    """Columns of the parameter table (see :func:`param_rows`)."""
    cols = ["item_id", "window_id", "copy"]
    for name in TRANSFORMS:
        cols.append(f"{name}")
    cols += [f"eq{j}_{w}" for j in range(7) for w in ("hz", "db", "q")]
    cols += ["tanh_distortion", "pitch_semitones", "bandstop_order", "bandstop_center_hz", "bandstop_bandwidth_hz",
             "color_snr_db", "color_f_decay", "background_snr_db", "noise_clip", "noise_offset",
             "gain_db", "transition_samples", "transition_t0", "transition_start_db", "transition_end_db", "rir_clip",
             "signal_rms", "noise_rms", "color_rms", "normalised_by"]
    return cols


def param_rows(p: ChainParams, item_ids, window_ids, copies, noise_ids, rir_ids, measured: dict) -> list[dict]:
    """One dict per row for the parameter table: the coin of each transform (1/0) and,
    where it applied, its parameters; ``measured`` adds what the chain computed
    (``signal_rms`` before the background noise, ``noise_rms`` and ``color_rms`` of what
    was added, ``normalised_by`` the final peak division or 1)."""
    out = []
    a = p.apply
    for r in range(p.rows):
        row = {"item_id": item_ids[r], "window_id": window_ids[r], "copy": int(copies[r])}
        for name in TRANSFORMS:
            row[name] = int(bool(a[name][r]))
        if a["SevenBandParametricEQ"][r]:
            for j in range(7):
                row[f"eq{j}_hz"], row[f"eq{j}_db"], row[f"eq{j}_q"] = (
                    float(p.eq_center_hz[r, j]), float(p.eq_gain_db[r, j]), float(p.eq_q[r, j]))
        if a["TanhDistortion"][r]:
            row["tanh_distortion"] = float(p.tanh_distortion[r])
        if a["PitchShift"][r]:
            row["pitch_semitones"] = float(p.pitch_semitones[r])
        if a["BandStopFilter"][r]:
            row["bandstop_order"] = int(p.bandstop_order[r])
            row["bandstop_center_hz"] = float(p.bandstop_center_hz[r])
            row["bandstop_bandwidth_hz"] = float(p.bandstop_bandwidth_hz[r])
        if a["AddColorNoise"][r]:
            row["color_snr_db"], row["color_f_decay"] = float(p.color_snr_db[r]), float(p.color_f_decay[r])
        if a["AddBackgroundNoise"][r]:
            row["background_snr_db"] = float(p.background_snr_db[r])
            row["noise_clip"] = noise_ids[p.noise_index[r]]
            row["noise_offset"] = int(p.noise_offset[r])
        if a["Gain"][r]:
            row["gain_db"] = float(p.gain_db[r])
        if a["GainTransition"][r]:
            row["transition_samples"], row["transition_t0"] = int(p.transition_samples[r]), int(p.transition_t0[r])
            row["transition_start_db"] = float(p.transition_start_db[r])
            row["transition_end_db"] = float(p.transition_end_db[r])
        if a["RIR"][r]:
            row["rir_clip"] = rir_ids[p.rir_index[r]]
        for k, v in measured.items():
            row[k] = float(v[r])
        out.append(row)
    return out


def _text(value: str) -> str:
    return value.replace("\t", " ").replace("\n", " ").replace("\r", " ")


def _column(B: int, rows: np.ndarray | None, values, kind: str) -> list[str]:
    """Cells of one column: ``values`` (length B) formatted where ``rows`` (all rows when
    None), empty elsewhere; floats as ``{:.6g}`` (as :func:`wakeprep.table._cell`)."""
    vals = np.asarray(values)
    if rows is None:
        sel = vals.tolist()
        return [format(v, ".6g") for v in sel] if kind == "f" else [str(v) for v in sel]
    col = [""] * B
    fmt = (lambda v: format(v, ".6g")) if kind == "f" else str
    for r, v in zip(rows.tolist(), vals[rows].tolist()):
        col[r] = fmt(v)
    return col


def param_table(p: ChainParams, item_ids, window_ids, copies, noise_ids, rir_ids, measured: dict) -> str:
    """The lines of the parameter table for ``p``'s rows (tab-separated, each ending in a
    newline, columns :func:`param_columns`): the same text as :func:`param_rows` written
    through :func:`wakeprep.table._cell`, built column by column (no Python per cell that
    is empty), so writing it keeps up with the GPU."""
    B, a = p.rows, p.apply
    on = {name: np.flatnonzero(a[name]) for name in TRANSFORMS}
    cols = [[_text(str(i)) for i in item_ids], [_text(str(i)) for i in window_ids], _column(B, None, copies, "i")]
    cols += [_column(B, None, a[name].astype(np.int64), "i") for name in TRANSFORMS]
    eq = [(p.eq_center_hz, p.eq_gain_db, p.eq_q)[w][:, j] for j in range(7) for w in range(3)]
    cols += [_column(B, on["SevenBandParametricEQ"], v, "f") for v in eq]
    nid = np.array([_text(str(i)) for i in noise_ids] + [""], dtype=object)
    rid = np.array([_text(str(i)) for i in rir_ids] + [""], dtype=object)
    spec = [("TanhDistortion", p.tanh_distortion, "f"), ("PitchShift", p.pitch_semitones, "f"),
            ("BandStopFilter", p.bandstop_order, "i"), ("BandStopFilter", p.bandstop_center_hz, "f"),
            ("BandStopFilter", p.bandstop_bandwidth_hz, "f"), ("AddColorNoise", p.color_snr_db, "f"),
            ("AddColorNoise", p.color_f_decay, "f"), ("AddBackgroundNoise", p.background_snr_db, "f"),
            ("AddBackgroundNoise", nid[p.noise_index], "s"), ("AddBackgroundNoise", p.noise_offset, "i"),
            ("Gain", p.gain_db, "f"), ("GainTransition", p.transition_samples, "i"),
            ("GainTransition", p.transition_t0, "i"), ("GainTransition", p.transition_start_db, "f"),
            ("GainTransition", p.transition_end_db, "f"), ("RIR", rid[p.rir_index], "s")]
    cols += [_column(B, on[name], v, kind) for name, v, kind in spec]
    cols += [_column(B, None, np.asarray(v, dtype=np.float64), "f") for v in measured.values()]
    return "".join(line + "\n" for line in map("\t".join, zip(*cols)))


def snr_db(signal_rms, noise_rms):
    """SNR in dB from two RMS values (inf where no noise was added)."""
    with np.errstate(divide="ignore"):
        return 20.0 * np.log10(np.asarray(signal_rms, dtype=np.float64) / np.asarray(noise_rms, dtype=np.float64))


