"""Speaker embeddings of 16 kHz int16 clips, behind one interface.

Two embedders:

- ``resemblyzer``: the Resemblyzer voice encoder (GE2E LSTM, 256-d). Its weights ship
  inside its wheel, so it works offline. Clips are split into 1.6 s partials as
  Resemblyzer does; the partials of a whole batch of clips go through the network in
  one forward pass, and each clip's embedding is the normalised mean of its partials.
- ``wavlm``: ``transformers.WavLMForXVector`` with its feature extractor, from a Hugging
  Face model id or a local folder; batched, padded, with an attention mask.

Both return L2-normalised float32 rows. :func:`load_embedder` turns a failure to load a
model into :class:`EmbedderLoadError`, whose message says which embedder, which model,
and how to fix it.
"""

from __future__ import annotations

import os
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


class ResemblyzerEmbedder:
    """Resemblyzer voice encoder, batched over clips.

    Examples
    --------
    >>> e = ResemblyzerEmbedder()                       # doctest: +SKIP
    >>> e.embed([np.zeros(16000, np.int16) + 1]).shape  # doctest: +SKIP
    (1, 256)
    """

    name = "resemblyzer"

    def __init__(self, device: str = "cpu", batch_partials: int = 256):
        try:
            from resemblyzer import VoiceEncoder
        except Exception as e:  # ImportError, or webrtcvad's pkg_resources import
            raise EmbedderLoadError(
                f"embedder 'resemblyzer': cannot import resemblyzer ({type(e).__name__}: {e}). "
                "Run ./setup.sh, which installs it with webrtcvad-wheels, or set embed.method: wavlm."
            ) from e
        self.model = VoiceEncoder(device=_device(device), verbose=False)
        self.model.eval()
        self.dim = 256
        self.batch_partials = batch_partials
        self.model_name = "resemblyzer-pretrained"

    def _partials(self, samples: np.ndarray) -> np.ndarray:
        from resemblyzer import audio
        from resemblyzer.hparams import audio_norm_target_dBFS

        wav = samples.astype(np.float32) / 32768.0
        wav = audio.normalize_volume(wav, audio_norm_target_dBFS, increase_only=True)
        wav_slices, mel_slices = self.model.compute_partial_slices(len(wav), rate=1.3, min_coverage=0.75)
        need = wav_slices[-1].stop
        if need > len(wav):
            wav = np.pad(wav, (0, need - len(wav)))
        mel = audio.wav_to_mel_spectrogram(wav)
        return np.stack([mel[s] for s in mel_slices]).astype(np.float32)

    def embed(self, clips: Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings of int16 16 kHz ``clips`` as an ``(n, 256)`` float32 array."""
        import torch

        if not len(clips):
            return np.zeros((0, self.dim), np.float32)
        partials = [self._partials(c) for c in clips]
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


def load_embedder(method: str, model: str | None = None, device: str = "cpu"):
    """The embedder named by ``embed.method`` in config.yaml."""
    if method == "resemblyzer":
        return ResemblyzerEmbedder(device=device)
    if method == "wavlm":
        return WavLMEmbedder(model or DEFAULT_WAVLM, device=device)
    raise EmbedderLoadError(f"embed.method: unknown embedder {method!r} (use resemblyzer or wavlm)")


def embed_store(audio_store, out_store, embedder, batch_size: int = 16, threads: int = 1) -> int:
    """Embed every clip of an audio store into a store of ``(1, dim)`` float32 rows.

    Clips are sorted by length within the shard before batching (less padding) and
    written back in store order. ``threads`` sets torch's intra-op threads; the float
    rounding depends on it, so keep it fixed for byte-identical reruns. Returns the
    number of clips.
    """
    import logging

    import torch

    from .shards import Progress
    from .store import RaggedStore, RaggedWriter

    torch.set_num_threads(max(1, int(threads)))
    audio = RaggedStore(audio_store)
    n = len(audio)
    order = np.argsort(audio.lengths, kind="stable")
    emb = np.zeros((n, embedder.dim), np.float32)
    progress = Progress(f"embed {audio.path}", n)
    for i in range(0, n, batch_size):
        idx = order[i : i + batch_size]
        emb[idx] = embedder.embed([np.asarray(audio[int(j)]) for j in idx])
        progress.step(len(idx))
    progress.finish()
    attrs = {
        "embedder": embedder.name,
        "model": embedder.model_name,
        "dim": embedder.dim,
        "corpus": audio.attrs.get("corpus"),
        "label": audio.attrs.get("label"),
    }
    with RaggedWriter(out_store, np.float32, (embedder.dim,), attrs=attrs) as w:
        for j, cid in enumerate(audio.ids):
            w.append(cid, emb[j : j + 1])
    logging.getLogger("wakeprep").info("embedded %d clips with %s", n, embedder.name)
    return n
