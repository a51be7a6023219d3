"""Logging for Snakemake scripts: everything to the job's log file."""

from __future__ import annotations

import contextlib
import logging
import sys


@contextlib.contextmanager
def script_logging(logfile):
    """Send ``logging`` and stderr to ``logfile`` for the duration of a script.

    An exception is logged with its traceback before it propagates, so the job's
    log says why it failed.
    """
    with open(logfile, "w", encoding="utf-8", buffering=1) as f:
        old_stderr = sys.stderr
        sys.stderr = f
        handler = logging.StreamHandler(f)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield
        except BaseException:
            logging.getLogger("wakeprep").exception("failed")
            raise
        finally:
            root.removeHandler(handler)
            sys.stderr = old_stderr
