"""HTML pages from the Jinja2 templates in ``templates/``, and CSV tables.

Every page extends ``base.html.j2`` (a small self-contained page, inline style, nothing
fetched); tables come from the ``table`` macro of ``macros.html.j2`` (values escaped,
numbers right-aligned). Jinja2 comes with Snakemake.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from pathlib import Path
from typing import Iterable, Sequence

from ..fileio import atomic_write

_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def plain(value) -> str:
    """A cell's text: floats with 6 significant digits, None as nothing."""
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def is_number(value) -> bool:
    """Whether a cell holds a number (right-aligned)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        return _NUMBER.fullmatch(value) is not None
    return hasattr(value, "__float__")


def hours(h: float) -> str:
    """Hours as shown in every table."""
    return f"{h:.4f}"


@functools.lru_cache(maxsize=1)
def environment():
    """The Jinja2 environment of the report's templates (autoescaped)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("wakeprep.report", "templates"),
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(plain=plain, hours=hours)
    env.tests["number"] = is_number
    return env


def render(template: str, **context) -> str:
    """Render ``templates/{template}``."""
    return environment().get_template(template).render(**context)


def write_page(path, template: str, **context) -> Path:
    """Render ``template`` into ``path``, atomically."""
    return atomic_write(path, render(template, **context))


def write_csv(path, header: Sequence[str], rows: Iterable[Sequence]) -> Path:
    """Write a comma-separated table with a header (``\\n`` line ends), atomically."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        w.writerow(plain(v) for v in row)
    return atomic_write(path, out.getvalue())
