"""Section "5. Features": a few clips' features per label, and their SpecAugment copies
when the workflow augments (``features_{label}.png``), read from the stores."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..features import FEATURE_SCALE
from ..split import SPLITS
from ..store import RaggedStore
from .plots_speakers import hash_first
from .png import figure, save_png

#: Example clips per label.
EXAMPLES_PER_LABEL = 4
#: Augmented copies shown next to each example clip.
AUGMENTED_SHOWN = 2
#: Frames (10 ms each) of an example clip drawn; longer clips are cut.
MAX_EXAMPLE_FRAMES = 300


def write(outputs, *, assembled, pairs, labels, augmented=(), seed: int = 0) -> None:
    """``features`` (one path per label of ``labels``) from the assembled (or windowed)
    folders ``assembled`` of ``pairs`` (``[split, label]`` each) and the augmented
    folders ``augmented`` (``results/augmented/{label}``)."""
    stores: dict = {}
    for (split, label), folder in zip(pairs, assembled):
        stores.setdefault(label, {})[split] = Path(folder) / "features"
    aug = {Path(p).name: Path(p) for p in augmented}
    for label, path in zip(labels, outputs["features"]):
        examples = feature_examples(stores.get(label, {}), seed, augmented=aug.get(label))
        plot_features(label, examples, path, augment_note(aug.get(label)))


@dataclass
class Example:
    """One example clip: its id, split, features (float, ``[frames, bins]``) and augmented copies."""

    clip_id: str
    split: str
    features: np.ndarray
    augmented: list = field(default_factory=list)


def augment_note(folder) -> str:
    """The SpecAugment settings of an augmented folder (its ``augment.json``), or ""."""
    meta = Path(folder) / "augment.json" if folder is not None else None
    if meta is None or not meta.is_file():
        return ""
    a = json.loads(meta.read_text(encoding="utf-8"))
    return (f"SpecAugment: {a['time_masks']} time masks up to {a['time_mask_max']} frames, "
            f"{a['freq_masks']} frequency masks up to {a['freq_mask_max']} bins")


def _first_store(stores: Mapping[str, object]) -> tuple[str, RaggedStore] | None:
    for split in SPLITS:
        if split in stores:
            s = RaggedStore(stores[split])
            if len(s):
                return split, s
    return None


def feature_examples(stores: Mapping[str, object], seed: int, n: int = EXAMPLES_PER_LABEL,
                     augmented=None, copies_shown: int = AUGMENTED_SHOWN) -> list[Example]:
    """A seeded choice of ``n`` clips of one label, with their augmented copies.

    Parameters
    ----------
    stores : mapping split -> path
        The label's feature stores (``results/mmap/{split}/{label}/features``). Clips
        come from the first non-empty split in train, validation, test order.
    seed : int
    n : int
    augmented : path-like, optional
        ``results/augmented/{label}`` (``part-NNNN`` stores of ``{clip id}#aug{c}``
        items); when given, the first ``copies_shown`` copies of each chosen clip.
    """
    found = _first_store(stores)
    if found is None:
        return []
    split, s = found
    parts = []
    if augmented is not None and Path(augmented).is_dir():
        parts = [RaggedStore(p) for p in sorted(Path(augmented).glob("part-*")) if (p / "meta.json").is_file()]
    out = []
    for cid in hash_first(s.ids, n, seed):
        ex = Example(cid, split, np.asarray(s[cid], dtype=np.float32) / FEATURE_SCALE)
        for c in range(copies_shown):
            part = next((p for p in parts if f"{cid}#aug{c}" in p), None)
            if part is not None:
                ex.augmented.append(np.asarray(part[f"{cid}#aug{c}"], dtype=np.float32) / FEATURE_SCALE)
        out.append(ex)
    return out


def plot_features(label: str, examples: Sequence[Example], path, augment_note: str = "") -> Path:
    """Feature images of the example clips: one row per clip, the original first,
    then its augmented copies. Time runs left to right (10 ms frames), the 40 mel bins
    bottom to top; one colour scale for the whole figure."""
    cols = 1 + max((len(e.augmented) for e in examples), default=0)
    rows = max(1, len(examples))
    width, height = 3.2 * cols + 1.2, 1.45 * rows + 0.7
    # fixed margins (in inches): the constrained layout costs a second per figure here
    with figure(width, height, layout=None) as fig:
        fig.subplots_adjust(left=0.55 / width, right=1 - 1.05 / width, bottom=0.45 / height, top=1 - 0.5 / height,
                            hspace=0.55, wspace=0.12)
        axes = fig.subplots(rows, cols, squeeze=False)
        if not examples:
            axes[0, 0].text(0.5, 0.5, f"no {label} clips", ha="center", va="center", transform=axes[0, 0].transAxes)
            axes[0, 0].set_axis_off()
            return save_png(fig, path)
        shown = [a[-MAX_EXAMPLE_FRAMES:] for e in examples for a in [e.features, *e.augmented]]
        vmax = max(float(a.max()) if a.size else 0.0 for a in shown) or 1.0
        image = None
        for r, ex in enumerate(examples):
            image = _draw_row(axes[r], ex, vmax, last=r == rows - 1) or image
        if image is not None:
            cax = fig.add_axes((1 - 0.85 / width, 0.2, 0.12 / width, 0.6))
            fig.colorbar(image, cax=cax, label="feature value")
        title = f"{label}: features of {len(examples)} clips"
        fig.suptitle(title + (f" ({augment_note})" if augment_note else ""), fontsize=9)
        return save_png(fig, path)


def _draw_row(axes, ex: Example, vmax: float, last: bool):
    """One example's panels (original, then its copies); returns the last image drawn."""
    panels = [("original", ex.features)] + [(f"augmented copy {c}", a) for c, a in enumerate(ex.augmented)]
    image = None
    for c, ax in enumerate(axes):
        if c >= len(panels):
            ax.set_axis_off()
            continue
        name, a = panels[c]
        a = a[-MAX_EXAMPLE_FRAMES:]
        if a.size:
            image = ax.imshow(a.T, origin="lower", aspect="auto", interpolation="nearest",
                              cmap="magma", vmin=0.0, vmax=vmax)
        ax.set_title(f"{ex.clip_id} ({ex.split}): {name}" if c == 0 else name, fontsize=7, loc="left")
        ax.tick_params(labelsize=6)
        if c == 0:
            ax.set_ylabel("bin", fontsize=7)
        if last:
            ax.set_xlabel("frame (10 ms)", fontsize=7)
    return image
