"""Figures off-screen and small, byte-reproducible PNG files.

Plots are drawn by matplotlib's Agg renderer through :class:`matplotlib.figure.Figure`
rather than ``pyplot`` (no global state, no display needed) and saved as 256-colour
palette PNGs without a date or version (:func:`save_png`): small, and the same inputs
give the same bytes.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from ..fileio import atomic_write

#: Resolution of every plot (pixels per inch); figure sizes are in inches.
DPI = 80

RC = {
    "svg.hashsalt": "wakeprep",  # fixed ids, should a plot ever be saved as SVG
    "font.family": "DejaVu Sans",  # ships with matplotlib: the same glyphs everywhere
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "savefig.dpi": DPI,
    "figure.dpi": DPI,
}


@contextlib.contextmanager
def figure(width: float, height: float, layout: str | None = "constrained"):
    """A new figure (``width`` x ``height`` inches) under the report's style."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(RC):
        yield Figure(figsize=(width, height), dpi=DPI, layout=layout)


def no_data(ax, text: str, title: str | None = None) -> None:
    """Write ``text`` in the middle of ``ax`` and hide its axes."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
    if title:
        ax.set_title(title)


def save_png(fig, path) -> Path:
    """Save ``fig`` as a small PNG at ``path``, atomically and byte-reproducibly.

    matplotlib draws the figure (Agg) without the "Software" text chunk; the pixels are
    then reduced to a 256-colour palette (median cut, no dithering: plots have few
    colours, and a colour map has 256) and written by Pillow with ``optimize``, which
    makes files 2 to 3 times smaller than matplotlib's RGBA PNG. Neither step records a
    date or version, so the same figure gives the same bytes.
    """
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    buf.seek(0)
    with Image.open(buf) as im:
        rgb = im.convert("RGB")
    pal = rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    pal.save(out, format="png", optimize=True)
    return atomic_write(path, out.getvalue())
