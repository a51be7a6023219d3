"""Speaker embeddings of 16 kHz int16 clips, behind one interface.

Two embedders:

- ``resemblyzer``: the Resemblyzer voice encoder (GE2E LSTM, 256-d). Its weights ship
  inside its wheel, so it works offline. Clips are split into 1.6 s partials as
  Resemblyzer does; the partials of a whole batch of clips go through the network in
  one forward pass, and each clip's embedding is the normalised mean of its partials.
- ``wavlm``: ``transformers.WavLMForXVector`` with its feature extractor, from a Hugging
  Face model id or a local folder; batched, padded, with an attention mask.

The Resemblyzer embedder computes Resemblyzer's preprocessing with NumPy and runs its
network without importing the ``resemblyzer`` package (whose librosa mel spectrogram
compiles with numba for seconds in every new process): an embed job starts in about a
second (docs/benchmarks.md). :func:`embed_store` embeds only the clips in which speech was
found, over their speech span, when the convert step ran speech detection.

Both return L2-normalised float32 rows. :func:`load_embedder` turns a failure to load a
model into :class:`EmbedderLoadError`, whose message says which embedder, which model,
and how to fix it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

DEFAULT_WAVLM = "microsoft/wavlm-base-plus-sv"


class EmbedderLoadError(RuntimeError):
    """The embedding model could not be loaded; the message says how to fix it."""


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


def _device(requested: str) -> str:
    import torch

    if requested == "cuda":
        if not torch.cuda.is_available():
            raise EmbedderLoadError("embed.device is 'cuda' but torch sees no CUDA device; set embed.device: cpu")
        return "cuda"
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cpu"


#: Resemblyzer's audio and model constants (``resemblyzer.hparams``).
RATE = 16000
N_FFT = 400  # 25 ms mel window
HOP = 160  # 10 ms step
N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s partials
NORM_TARGET_DBFS = -30
INT16_MAX = 2**15 - 1


def _hz_to_mel(f):
    """librosa's Slaney mel scale (``htk=False``), in float64."""
    f = np.asanyarray(f, dtype=np.float64)
    f_sp, logstep = 200.0 / 3, np.log(6.4) / 27.0
    mels = f / f_sp
    if mels.ndim:
        t = f >= 1000.0
        mels[t] = 1000.0 / f_sp + np.log(f[t] / 1000.0) / logstep
    elif f >= 1000.0:
        mels = 1000.0 / f_sp + np.log(f / 1000.0) / logstep
    return mels


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    f_sp, logstep = 200.0 / 3, np.log(6.4) / 27.0
    freqs = f_sp * m
    t = m >= 1000.0 / f_sp
    freqs[t] = 1000.0 * np.exp(logstep * (m[t] - 1000.0 / f_sp))
    return freqs


@lru_cache(maxsize=1)
def mel_basis() -> np.ndarray:
    """The ``(40, 201)`` float32 filterbank of ``librosa.filters.mel(sr=16000, n_fft=400,
    n_mels=40)`` (Slaney scale and area norm), computed the same way, bit for bit."""
    fftfreqs = np.fft.rfftfreq(n=N_FFT, d=1.0 / RATE)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(RATE / 2), N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    w = np.zeros((N_MELS, 1 + N_FFT // 2), dtype=np.float32)
    for i in range(N_MELS):
        w[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    w *= (2.0 / (mel_f[2 : N_MELS + 2] - mel_f[:N_MELS]))[:, np.newaxis]
    return w


@lru_cache(maxsize=1)
def hann_window() -> np.ndarray:
    """scipy's periodic Hann window of 400 samples (``get_window("hann", 400)``), float64."""
    fac = np.linspace(-np.pi, np.pi, N_FFT + 1)
    w = np.zeros(N_FFT + 1)
    for k, a in enumerate((0.5, 0.5)):
        w += a * np.cos(k * fac)
    return w[:-1]


def mel_spectrogram(wav: np.ndarray) -> np.ndarray:
    """Resemblyzer's ``audio.wav_to_mel_spectrogram`` without librosa or numba.

    The same operations in the same precision as ``librosa.feature.melspectrogram(y=wav,
    sr=16000, n_fft=400, hop_length=160, n_mels=40)`` (centred frames padded with zeros,
    float32 frames times a float64 window, a float64 real FFT stored as complex64, power
    2, one ``einsum`` with the filterbank), so the output is byte-identical to it
    (tests/test_embed.py checks this against librosa), with no JIT compilation at the
    first call. Returns ``(frames, 40)`` float32. The ``einsum`` is a BLAS matrix product,
    whose last bits depend on BLAS's thread count, in librosa as here: :func:`embed_store`
    holds BLAS to one thread.
    """
    y = np.pad(np.asarray(wav, dtype=np.float32), N_FFT // 2)
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP]
    spec = np.fft.rfft(frames * hann_window(), axis=-1).astype(np.complex64)
    power = (np.abs(spec) ** 2.0).T  # (201, frames), laid out as librosa's
    return np.einsum("...ft,mf->...mt", power, mel_basis(), optimize=True).astype(np.float32).T


def normalize_volume(wav: np.ndarray, target_dbfs: float = NORM_TARGET_DBFS) -> np.ndarray:
    """Resemblyzer's ``audio.normalize_volume(wav, -30, increase_only=True)``: raise quiet
    clips to -30 dBFS RMS, leave louder ones alone (digital silence stays silent)."""
    rms = np.sqrt(np.mean((wav * INT16_MAX) ** 2))
    if not rms > 0:
        return wav
    change = target_dbfs - 20 * np.log10(rms / INT16_MAX)
    if change < 0:
        return wav
    return wav * (10 ** (change / 20))


def partial_slices(n_samples: int, rate: float = 1.3, min_coverage: float = 0.75) -> list[slice]:
    """Mel-frame slices of the 1.6 s partials of a clip of ``n_samples``, as Resemblyzer's
    ``VoiceEncoder.compute_partial_slices`` gives them (its mel slices)."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    frame_step = int(np.round((RATE / rate) / HOP))
    steps = max(1, n_frames - PARTIAL_FRAMES + frame_step + 1)
    starts = list(range(0, steps, frame_step))
    last = starts[-1] * HOP
    coverage = (n_samples - last) / (PARTIAL_FRAMES * HOP)
    if coverage < min_coverage and len(starts) > 1:
        starts = starts[:-1]
    return [slice(s, s + PARTIAL_FRAMES) for s in starts]


def resemblyzer_weights() -> str:
    """Path of ``pretrained.pt`` inside the installed ``resemblyzer`` package, found
    without importing it (its import pulls in librosa and webrtcvad)."""
    import importlib.util

    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderLoadError(
            "embedder 'resemblyzer': the resemblyzer package is not installed. "
            "Run ./setup.sh (or pip install resemblyzer), or set embed.method: wavlm."
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], "pretrained.pt")
    if not os.path.isfile(path):
        raise EmbedderLoadError(f"embedder 'resemblyzer': {path} is missing; reinstall resemblyzer (./setup.sh)")
    return path


def _voice_encoder(weights: str, device: str):
    """Resemblyzer's ``VoiceEncoder`` network (3-layer LSTM, linear, ReLU, L2 norm) with
    its shipped weights, built here so that ``resemblyzer`` itself is never imported."""
    import torch
    from torch import nn

    class VoiceEncoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(N_MELS, 256, 3, batch_first=True)
            self.linear = nn.Linear(256, 256)
            self.relu = nn.ReLU()

        def forward(self, mels):
            _, (hidden, _) = self.lstm(mels)
            raw = self.relu(self.linear(hidden[-1]))
            return raw / torch.norm(raw, dim=1, keepdim=True)

    model = VoiceEncoder()
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)["model_state"]
        model.load_state_dict(state, strict=False)
    except Exception as e:
        raise EmbedderLoadError(
            f"embedder 'resemblyzer': cannot load {weights} ({type(e).__name__}: {e}); reinstall resemblyzer (./setup.sh)"
        ) from e
    model.device = torch.device(device)
    return model.to(model.device).eval()


class ResemblyzerEmbedder:
    """Resemblyzer voice encoder, batched over clips.

    Resemblyzer's own preprocessing and network, computed without importing the
    ``resemblyzer`` package: its mel spectrogram goes through librosa, whose first call
    spends about 3 s compiling with numba in every new process, and its import pulls in
    librosa and webrtcvad. :func:`mel_spectrogram` computes the same bytes with NumPy,
    and the network is the same torch module with the weights file that ships in the
    resemblyzer wheel. The embeddings equal ``VoiceEncoder.embed_utterance``'s partial
    embeddings averaged and normalised (tests/test_embed.py).

    Examples
    --------
    >>> e = ResemblyzerEmbedder()                       # doctest: +SKIP
    >>> e.embed([np.zeros(16000, np.int16) + 1]).shape  # doctest: +SKIP
    (1, 256)
    """

    name = "resemblyzer"

    def __init__(self, device: str = "cpu", batch_partials: int = 256):
        try:
            import torch  # noqa: F401
        except Exception as e:
            raise EmbedderLoadError(
                f"embedder 'resemblyzer': cannot import torch ({type(e).__name__}: {e}). Run ./setup.sh."
            ) from e
        self.model = _voice_encoder(resemblyzer_weights(), _device(device))
        self.dim = 256
        self.batch_partials = batch_partials
        self.model_name = "resemblyzer-pretrained"

    @staticmethod
    def partials(samples: np.ndarray) -> np.ndarray:
        """The ``(n, 160, 40)`` float32 mel partials of one int16 clip."""
        wav = normalize_volume(samples.astype(np.float32) / 32768.0)
        slices = partial_slices(len(wav))
        need = slices[-1].stop * HOP
        if need > len(wav):
            wav = np.pad(wav, (0, need - len(wav)))
        mel = mel_spectrogram(wav)
        return np.stack([mel[s] for s in slices]).astype(np.float32)

    def embed(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings of int16 16 kHz ``clips`` as an ``(n, 256)`` float32 array."""
        import torch

        if not len(clips):
            return np.zeros((0, self.dim), np.float32)
        partials = [self.partials(c) for c in clips]
        counts = np.array([len(p) for p in partials])
        stacked = np.concatenate(partials)
        outs = []
        with torch.no_grad():
            for i in range(0, len(stacked), self.batch_partials):
                batch = torch.from_numpy(stacked[i : i + self.batch_partials]).to(self.model.device)
                outs.append(self.model(batch).cpu().numpy())
        emb = np.concatenate(outs)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        means = np.stack([emb[a:b].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])])
        return _normalise(means)


class WavLMEmbedder:
    """``WavLMForXVector`` x-vectors from a model id or a local folder.

    Examples
    --------
    >>> e = WavLMEmbedder("/models/wavlm-base-plus-sv")   # doctest: +SKIP
    """

    name = "wavlm"

    def __init__(self, model: str = DEFAULT_WAVLM, device: str = "cpu", max_seconds: float = 20.0):
        try:
            from transformers import AutoFeatureExtractor, WavLMForXVector
        except Exception as e:
            raise EmbedderLoadError(
                f"embedder 'wavlm': cannot import transformers ({e}). Run ./setup.sh or set embed.method: resemblyzer."
            ) from e
        local = os.path.isdir(model)
        try:
            self.extractor = AutoFeatureExtractor.from_pretrained(model, local_files_only=local)
            self.model = WavLMForXVector.from_pretrained(model, local_files_only=local)
        except Exception as e:
            where = "local folder" if local else "Hugging Face model id"
            raise EmbedderLoadError(
                f"embedder 'wavlm': cannot load model '{model}' ({where}): {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. "
                f"Download it first on a machine with internet (e.g. `huggingface-cli download {model if not local else DEFAULT_WAVLM} "
                "--local-dir models/wavlm`), then point embed.model at that local folder; "
                "or set embed.method: resemblyzer, whose weights ship with the package."
            ) from e
        self.device = _device(device)
        self.model.to(self.device).eval()
        self.dim = int(self.model.config.xvector_output_dim)
        self.max_samples = int(max_seconds * 16000)
        self.model_name = model

    def embed(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings of int16 16 kHz ``clips``, padded into one batch with an attention mask."""
        import torch

        if not len(clips):
            return np.zeros((0, self.dim), np.float32)
        waves = [c[: self.max_samples].astype(np.float32) / 32768.0 for c in clips]
        inputs = self.extractor(
            waves, sampling_rate=16000, padding=True, return_attention_mask=True, return_tensors="pt"
        )
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        with torch.no_grad():
            out = self.model(**inputs).embeddings
        return _normalise(out.cpu().numpy())


@dataclass(frozen=True)
class EmbedSettings:
    """Embedding settings (``embed:`` in config.yaml)."""

    method: str = "resemblyzer"
    model: str = DEFAULT_WAVLM
    device: str = "cpu"
    batch_size: int = 16
    threads: int = 1
    labels: tuple = ("positive", "negative", "hard_negative")
    trim: bool = True

    @classmethod
    def from_config(cls, cfg: dict | None) -> "EmbedSettings":
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"embed.{unknown[0]}: unknown key (allowed: {', '.join(cls.__dataclass_fields__)})")
        if "labels" in cfg:
            cfg["labels"] = tuple(cfg["labels"])
        return cls(**cfg)


def embed_shard(audio_store, out_store, settings: EmbedSettings, table=None) -> int:
    """The ``embed`` rule: load the embedder ``settings`` name and embed one shard's audio
    store (see :func:`embed_store`). Torch's thread count changes float rounding, so it
    comes from ``settings.threads``, not from the threads Snakemake grants (which
    ``--cores`` can lower): same config, same bytes."""
    embedder = load_embedder(settings.method, settings.model, settings.device)
    return embed_store(audio_store, out_store, embedder, batch_size=settings.batch_size,
                       threads=settings.threads, table=table, trim=settings.trim)


def load_embedder(method: str, model: str | None = None, device: str = "cpu"):
    """The embedder named by ``embed.method`` in config.yaml."""
    if method == "resemblyzer":
        return ResemblyzerEmbedder(device=device)
    if method == "wavlm":
        return WavLMEmbedder(model or DEFAULT_WAVLM, device=device)
    raise EmbedderLoadError(f"embed.method: unknown embedder {method!r} (use resemblyzer or wavlm)")


def exit_without_teardown() -> None:
    """End a finished embed job now, skipping the interpreter's teardown.

    Unloading torch's modules at exit takes 0.4 s on an idle machine and 1-1.7 s on a
    busy one, a fixed cost of every embed job (bench/embed.py). Call this only when every
    output is written and closed: it flushes logging and the standard streams, then
    leaves with status 0 without running ``atexit`` handlers or finalisers.
    """
    import logging
    import sys

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(0)


def speech_spans(table, ids) -> dict[str, tuple[int, int] | None]:
    """For each clip id of ``ids``, its speech span in samples from the clip table
    (``speech_start_s``, ``speech_end_s``), or ``None`` where the detector found no speech
    (empty ``speech_end_s``)."""
    from .table import read_table

    rows = {r["clip_id"]: r for r in read_table(table)}
    spans: dict[str, tuple[int, int] | None] = {}
    for cid in ids:
        row = rows.get(cid)
        if row is None:
            raise ValueError(f"{table}: no row for clip {cid!r} of the audio store; rerun the convert rule for this shard")
        end = row.get("speech_end_s") or ""
        if end == "":
            spans[cid] = None
        else:
            spans[cid] = (int(round(float(row["speech_start_s"]) * RATE)), int(round(float(end) * RATE)))
    return spans


def embed_store(audio_store, out_store, embedder, batch_size: int = 16, threads: int = 1,
                table=None, trim: bool = True) -> int:
    """Embed the speech clips of an audio store into a store of ``(1, dim)`` float32 rows.

    When the audio store was made with speech detection (its ``vad`` attribute, set by
    the convert rule for the labels in ``vad.labels``) and its clip ``table`` is given,
    clips in which no speech was found are not embedded: the output holds an id only for
    each embedded clip, so it may have fewer items than the audio store. With ``trim``
    only the detected speech span of each clip is embedded. Clips of stores made without
    speech detection are embedded whole.

    Clips are sorted by length within the shard before batching (less padding) and
    written back in store order. ``threads`` sets torch's intra-op threads; the float
    rounding depends on it, so keep it fixed for byte-identical reruns. NumPy's BLAS runs
    on one thread here for the same reason. Returns the number of clips embedded.
    """
    import logging

    import torch
    from threadpoolctl import threadpool_limits

    from .shards import Progress
    from .store import RaggedStore, RaggedWriter

    torch.set_num_threads(max(1, int(threads)))
    audio = RaggedStore(audio_store)
    ids = audio.ids
    vad = bool(audio.attrs.get("vad")) and table is not None
    spans = speech_spans(table, ids) if vad else {}
    keep = [j for j, cid in enumerate(ids) if not vad or spans[cid] is not None]

    def clip(j: int) -> np.ndarray:
        x = np.asarray(audio[j])
        if vad and trim:
            a, b = spans[ids[j]]
            x = x[a:b]
        return x

    def length(j: int) -> int:
        n = int(audio.lengths[j])
        if vad and trim:
            a, b = spans[ids[j]]
            return max(0, min(b, n) - a)
        return n

    lengths = np.array([length(j) for j in keep], dtype=np.int64)
    order = [keep[k] for k in np.argsort(lengths, kind="stable")]
    emb = np.zeros((len(ids), embedder.dim), np.float32)
    progress = Progress(f"embed {audio.path}", len(keep))
    # The mel spectrogram's matrix product goes through BLAS, whose rounding depends on its
    # thread count (librosa's does too): one BLAS thread, whatever the environment says.
    with threadpool_limits(limits=1, user_api="blas"):
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            emb[idx] = embedder.embed([clip(int(j)) for j in idx])
            progress.step(len(idx))
    progress.finish()
    attrs = {
        "embedder": embedder.name,
        "model": embedder.model_name,
        "dim": embedder.dim,
        "corpus": audio.attrs.get("corpus"),
        "label": audio.attrs.get("label"),
        "vad": audio.attrs.get("vad", "") if vad else "",
        "span": "speech" if vad and trim else "clip",
        "skipped_no_speech": len(ids) - len(keep),
    }
    with RaggedWriter(out_store, np.float32, (embedder.dim,), attrs=attrs) as w:
        for j in keep:
            w.append(ids[j], emb[j : j + 1])
    logging.getLogger("wakeprep").info(
        "embedded %d clips with %s (%s); %d without speech skipped",
        len(keep), embedder.name, attrs["span"], len(ids) - len(keep),
    )
    return len(keep)
