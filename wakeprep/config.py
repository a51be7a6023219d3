"""Config validation with one clear line per problem, naming the key."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, validators

SCHEMA = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """config.yaml has a bad key or value; the message names it."""


def key_path(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _message(err) -> str:
    where = key_path(err.absolute_path)
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(k for k in err.instance if k not in allowed)
        prefix = "" if where == "(top level)" else where + "."
        return "\n  ".join(f"{prefix}{k}: unknown key (allowed here: {', '.join(allowed)})" for k in extra)
    return f"{where}: {err.message}"


def load_schema(schema_path=SCHEMA) -> dict:
    with open(schema_path, encoding="utf-8") as f:
        # libyaml's loader where PyYAML has it: the schema in 5 ms rather than 35, once per
        # Snakemake start
        return yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _filling_validator():
    """Draft 2020-12 validator that sets each missing property's schema default before
    checking it, as ``snakemake.utils.validate`` does (the jsonschema FAQ's recipe), but
    reports every problem rather than the first."""
    properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, props, instance, schema):
        if isinstance(instance, dict):
            for name, sub in props.items():
                if "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from properties(validator, props, instance, schema)

    return validators.extend(Draft202012Validator, {"properties": set_defaults})


def check_config(config: dict, schema_path=SCHEMA, basedir=".") -> None:
    """Validate ``config`` in place, once: fill in every default of the schema, then
    check the values the schema can check and, once those are right, the rules across
    keys (:func:`semantic_problems`). Raise :class:`ConfigError` listing every
    problem, one line each, naming the key.
    """
    validator = _filling_validator()(load_schema(schema_path))
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    lines = [_message(e) for e in errors]
    if not lines:
        lines += semantic_problems(config, basedir)
    if lines:
        raise ConfigError("invalid config:\n  " + "\n  ".join(lines))


def semantic_problems(config: dict, basedir=".") -> list[str]:
    """Problems the schema cannot express: corpus names unique, regexes valid, corpus
    folders present (unless the demo will generate them), ratios adding up to 1,
    bounds in order. ``config`` has the schema's defaults filled in (:func:`check_config`)."""
    lines = _corpus_problems(config, basedir)
    ratios = config["split"]["ratios"]
    if abs(sum(ratios.values()) - 1.0) > 1e-6:
        lines.append(f"split.ratios: train + validation + test must add up to 1, not {sum(ratios.values()):g}")
    windows = config["windows"]
    for label in windows["place_labels"]:
        if label not in config["vad"]["labels"]:
            lines.append(f"windows.place_labels: '{label}' is placed by its speech end, which only clips of "
                         f"vad.labels get: add '{label}' to vad.labels")
    jmin, jmax, positive_s = windows["end_jitter_min_s"], windows["end_jitter_max_s"], windows["positive_s"]
    if not jmin <= jmax < positive_s:
        lines.append(f"windows.end_jitter_min_s ({jmin}) must be <= windows.end_jitter_max_s ({jmax}), "
                     f"which must be below windows.positive_s ({positive_s})")
    clip_ms = config["export"]["trainer"]["clip_duration_ms"]
    if clip_ms > positive_s * 1000:
        lines.append(f"export.trainer.clip_duration_ms: {clip_ms} ms is longer than windows.positive_s "
                     f"({positive_s} s): the trainer would pad every positive")
    lo, hi = config["audio"]["min_duration_s"], config["audio"]["max_duration_s"]
    if lo >= hi:
        lines.append(f"audio.min_duration_s: {lo} must be below audio.max_duration_s ({hi})")
    return lines


def _corpus_problems(config: dict, basedir) -> list[str]:
    lines = []
    names = [c["name"] for c in config["corpora"]]
    for i, c in enumerate(config["corpora"]):
        if names.count(c["name"]) > 1 and names.index(c["name"]) != i:
            lines.append(f"corpora[{i}].name: '{c['name']}' is used by more than one corpus")
        if "speaker_regex" in c:
            try:
                re.compile(c["speaker_regex"])
            except re.error as e:
                lines.append(f"corpora[{i}].speaker_regex: not a valid regular expression ({e})")
        folder = Path(basedir, c["path"])
        if folder.is_file():
            lines.append(
                f"corpora[{i}].path: corpus '{c['name']}': '{c['path']}' is a file, not a folder "
                f"(set corpora[{i}].path in config.yaml to the folder that holds its audio)"
            )
        elif not folder.is_dir() and not demo_generates(config, c["path"], basedir):
            lines.append(
                f"corpora[{i}].path: corpus '{c['name']}': folder '{c['path']}' does not exist "
                f"(set corpora[{i}].path in config.yaml)"
            )
    return lines


def use_checkout(basedir: str) -> None:
    """Point the workflow's jobs at the package of the checkout in ``basedir``.

    Scripts run in new processes (on cluster nodes too), which import ``wakeprep`` from
    ``PYTHONPATH`` first: this checkout's package, not whichever copy is installed.
    ``WAKEPREP_ROOT`` is what ``envs/*.yaml`` install with ``-e ${WAKEPREP_ROOT}``: conda
    runs pip from a copy of the env file under ``.snakemake/conda``, where a relative
    path would point elsewhere.
    """
    others = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != basedir]
    os.environ["PYTHONPATH"] = os.pathsep.join([basedir, *others])
    os.environ.setdefault("WAKEPREP_ROOT", basedir)


#: File the demo generator writes into the demo folder last; named by the parameters,
#: so that a demo made with other ones is generated again.
DEMO_MARKER = ".wakeprep-demo-seed{seed}-takes{takes}.json"


def demo_marker(config: dict) -> str:
    """Path of the file that marks the demo folder complete for this config (defaults
    filled in, see :func:`check_config`)."""
    name = DEMO_MARKER.format(seed=config["seed"], takes=config["demo"]["takes"])
    return os.path.join(config["demo"]["folder"], name)


def demo_generates(config: dict, path: str, basedir=".") -> bool:
    """Whether ``path`` lies in the demo folder and the workflow has yet to generate it:
    ``demo.generate`` is on and the folder holds no complete demo for this config (see
    :func:`demo_marker`). An existing complete demo is used as it is, whatever
    Snakemake's records say (a fresh clone, a moved checkout)."""
    if not config["demo"]["generate"]:
        return False
    folder = os.path.normpath(config["demo"]["folder"])
    p = os.path.normpath(path)
    if not (p == folder or p.startswith(folder + os.sep)):
        return False
    return not Path(basedir, demo_marker(config)).is_file()
