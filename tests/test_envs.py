"""Every rule's conda environment provides what the rule's code imports.

Conda channels are not reachable where these tests run, so the environments are checked
statically: the rules are read from ``rules/*.smk`` (and the Snakefile), each rule's
``script:`` is parsed with :mod:`ast`, the ``wakeprep`` modules it imports are followed
transitively (see :func:`third_party_imports` for which imports count), and every
third-party module found must be provided by a package of the rule's ``conda:`` file.
Standard-library modules are ignored. A module that is not in :data:`PROVIDERS` fails
the test until someone says which package provides it.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from helpers import REPO

PACKAGE = "wakeprep"

# Import name -> the packages that provide it: conda-forge names and PyPI names (pip:).
PROVIDERS: dict[str, set[str]] = {
    "numpy": {"numpy"},
    "scipy": {"scipy"},
    "soundfile": {"pysoundfile", "soundfile"},
    "soxr": {"soxr-python", "soxr"},
    "yaml": {"pyyaml"},
    "jsonschema": {"jsonschema"},
    "pymicro_features": {"pymicro-features"},
    "sklearn": {"scikit-learn"},
    "threadpoolctl": {"threadpoolctl"},
    "faiss": {"faiss-cpu", "faiss-gpu", "faiss"},
    "torch": {"pytorch", "pytorch-cpu", "pytorch-gpu", "torch"},
    "torchaudio": {"torchaudio"},
    "transformers": {"transformers"},
    "resemblyzer": {"resemblyzer"},
    "webrtcvad": {"webrtcvad-wheels", "webrtcvad", "py-webrtcvad"},
    "silero_vad": {"silero-vad"},
    "onnxruntime": {"onnxruntime"},
    "librosa": {"librosa"},
    "matplotlib": {"matplotlib", "matplotlib-base"},
    "PIL": {"pillow"},
    "jinja2": {"jinja2"},
    "mmap_ninja": {"mmap-ninja"},
    "cupy": {"cupy", "cupy-core", "cupy-cuda12x", "cupy-cuda13x"},
    "cupyx": {"cupy", "cupy-core", "cupy-cuda12x", "cupy-cuda13x"},
    "pandas": {"pandas"},
    "tqdm": {"tqdm"},
    "numba": {"numba"},
    "pyroomacoustics": {"pyroomacoustics"},
}
# Importable in every script job without an env entry: Snakemake's script preamble puts
# Snakemake's own location on sys.path (it needs it to unpickle the `snakemake` object).
PROVIDED_BY_SNAKEMAKE = {"snakemake"}
# Directives that make a rule run code (a rule with none of them is a target, like `all`).
CODE_DIRECTIVES = {"script", "shell", "run", "notebook", "wrapper", "cwl", "template_engine"}


# ------------------------------------------------------------------ rules


@dataclass
class Rule:
    name: str
    source: Path
    line: int
    directives: dict[str, str] = field(default_factory=dict)  # name -> raw value text

    @property
    def where(self) -> str:
        return f"{self.source.relative_to(REPO)}:{self.line}"

    def path_of(self, directive: str) -> Path | None:
        """The file a ``conda:``/``script:`` names, resolved like Snakemake does: relative
        to the file that defines the rule. None when absent; ValueError when not a literal."""
        raw = self.directives.get(directive)
        if raw is None:
            return None
        try:
            value = ast.literal_eval(raw.strip().rstrip(","))
        except (ValueError, SyntaxError):
            raise ValueError(f"rule {self.name} ({self.where}): {directive}: {raw.strip()!r} is not a plain string; "
                             "the env tests read it statically") from None
        if not isinstance(value, str):
            raise ValueError(f"rule {self.name} ({self.where}): {directive}: expected a string, got {value!r}")
        return (self.source.parent / value).resolve()


_RULE = re.compile(r"^(\s*)(?:rule|checkpoint)\s+(\w+)\s*:")
_DIRECTIVE = re.compile(r"^(\s+)(\w+)\s*:(.*)$")


def parse_rules(path: Path) -> list[Rule]:
    """Rules (and checkpoints) of one Snakemake file with their directives' raw values."""
    rules: list[Rule] = []
    lines = path.read_text().splitlines()
    current, rule_indent, dir_indent = None, 0, None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _RULE.match(line)
        if m:
            current = Rule(m.group(2), path, i + 1)
            rules.append(current)
            rule_indent, dir_indent = len(m.group(1)), None
            i += 1
            continue
        if current is not None and line.strip() and not line.lstrip().startswith("#"):
            indent = len(line) - len(line.lstrip())
            if indent <= rule_indent:
                current = None
            else:
                m = _DIRECTIVE.match(line)
                if m and (dir_indent is None or len(m.group(1)) == dir_indent):
                    dir_indent = len(m.group(1))
                    name, value = m.group(2), m.group(3).strip()
                    if not value:  # value on the following (more indented) line
                        j = i + 1
                        while j < len(lines) and not lines[j].strip():
                            j += 1
                        if j < len(lines) and len(lines[j]) - len(lines[j].lstrip()) > dir_indent:
                            value = lines[j].strip()
                    current.directives[name] = value
        i += 1
    return rules


def all_rules() -> list[Rule]:
    files = sorted((REPO / "rules").glob("*.smk")) + [REPO / "Snakefile"]
    return [r for f in files for r in parse_rules(f)]


RULES = all_rules()
SCRIPT_RULES = [r for r in RULES if "script" in r.directives]


# ------------------------------------------------------------------ environments


@dataclass
class Env:
    path: Path
    channels: list[str]
    conda: dict[str, str]  # name -> full spec
    pip: dict[str, str]  # normalised name -> full spec
    editable: list[str]  # paths after -e

    @property
    def names(self) -> set[str]:
        return set(self.conda) | set(self.pip)

    @property
    def rel(self) -> str:
        return str(self.path.relative_to(REPO))


def _pip_name(spec: str) -> str:
    return re.split(r"[\s\[=<>!~;@]", spec, maxsplit=1)[0].lower().replace("_", "-")


def _editable_path(env_path: Path, target: str) -> Path:
    """Where an editable pip line points: ${WAKEPREP_ROOT} is the repository (rules/common.smk
    sets it, and pip expands variables in requirement lines), else relative to the env file."""
    target = target.split("#", 1)[0].strip()
    if target == "${WAKEPREP_ROOT}":
        return REPO
    return (env_path.parent / target).resolve()


def read_env(path: Path) -> Env:
    data = yaml.safe_load(path.read_text()) or {}
    conda, pip, editable = {}, {}, []
    for dep in data.get("dependencies") or []:
        if isinstance(dep, dict):
            for spec in dep.get("pip") or []:
                spec = str(spec).strip()
                if spec.startswith(("-e ", "--editable ")):
                    editable.append(spec.split(None, 1)[1].strip())
                else:
                    pip[_pip_name(spec)] = spec
        else:
            spec = str(dep).strip()
            name = re.match(r"^(?:[\w.-]+::)?([A-Za-z0-9_.-]+)", spec).group(1).lower()
            conda[name] = spec
    return Env(path, list(data.get("channels") or []), conda, pip, editable)


ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))


# ------------------------------------------------------------------ imports


def module_file(name: str, roots: list[Path]) -> Path | None:
    """The source file of module ``name`` under one of ``roots``, if it is ours."""
    parts = name.split(".")
    for root in roots:
        base = root.joinpath(*parts)
        if base.with_suffix(".py").is_file():
            return base.with_suffix(".py")
        if (base / "__init__.py").is_file():
            return base / "__init__.py"
    return None


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imports_in(path: Path, modname: str | None) -> list[tuple[str, list[str], int, bool]]:
    """``(module, [candidate submodules], line, lazy)`` for every import in ``path``:
    ``lazy`` when it sits inside a function (it runs when the function is called), not
    when it runs at import time. ``if TYPE_CHECKING:`` blocks are skipped. Relative
    imports are resolved against ``modname``; ``from m import x`` lists ``m.x`` as a
    candidate submodule."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    found = []

    def visit(node, lazy):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child, lazy)
            return
        if isinstance(node, ast.Import):
            for a in node.names:
                found.append((a.name, [], node.lineno, lazy))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if modname is None:
                    raise AssertionError(f"{path}:{node.lineno}: relative import outside a package")
                base = modname.split(".") if is_pkg else modname.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module
            found.append((mod, [f"{mod}.{a.name}" for a in node.names if a.name != "*"], node.lineno, lazy))
        inner = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return found


def third_party_imports(script: Path) -> dict[str, list[str]]:
    """Top-level third-party module -> where it is imported (``file:line``), for a rule
    script and the ``wakeprep`` modules (and scripts/ helpers) it uses.

    Which imports count:

    - every import of the script itself;
    - every import, lazy ones (inside functions) included, of the modules the script
      imports: the script calls their functions. The same for a module that one of those
      imports lazily (it is imported because a function that runs needs it);
    - the import-time imports of every module loaded on the way (their module-level
      code runs); their lazy imports do not count (``summary`` imports
      ``wakeprep.split`` for a constant, not for its faiss-based clustering).
    """
    roots = [REPO, script.parent]  # Snakemake puts the script's folder on sys.path
    needed: dict[str, list[str]] = {}
    mode: dict[Path, bool] = {}  # file -> lazy imports count ("used") or not ("loaded")
    queue: list[tuple[Path, str | None, bool]] = [(script, None, True)]
    while queue:
        path, modname, used = queue.pop()
        if path in mode and (mode[path] or not used):
            continue
        mode[path] = used
        for mod, candidates, line, lazy in imports_in(path, modname):
            if lazy and not used:
                continue
            where = f"{path.relative_to(REPO)}:{line}"
            top = mod.split(".")[0]
            if top in sys.stdlib_module_names:
                continue
            if module_file(top, roots) is None:
                needed.setdefault(top, []).append(where)
                continue
            if top == PACKAGE:
                needed.setdefault(PACKAGE, []).append(where)
            # Imported from the script, or lazily from a used module: used. Otherwise
            # (a module-level import of a package module) only loaded. The packages on
            # the way (their __init__) are loaded in either case.
            target_used = used and (modname is None or lazy)
            parts = mod.split(".")
            for k in range(1, len(parts) + 1):
                name = ".".join(parts[:k])
                f = module_file(name, roots)
                if f is None:
                    raise AssertionError(f"{where}: imports {mod}, but {name} is not a module of this repository")
                queue.append((f, name, target_used and k == len(parts)))
            for cand in candidates:
                f = module_file(cand, roots)
                if f is not None:
                    queue.append((f, cand, target_used))
    return needed


# ------------------------------------------------------------------ tests


def test_rules_were_found():
    names = {r.name for r in RULES}
    assert {"convert", "features", "summary"} <= names, names
    assert SCRIPT_RULES, "no rule with script: found"


@pytest.mark.parametrize("rule", [r for r in RULES if CODE_DIRECTIVES & set(r.directives)], ids=lambda r: r.name)
def test_every_rule_names_an_existing_env(rule):
    assert "run" not in rule.directives, (
        f"rule {rule.name} ({rule.where}) uses run:, where conda: has no effect; use script:")
    assert "conda" in rule.directives, f"rule {rule.name} ({rule.where}) runs code but has no conda: directive"
    env = rule.path_of("conda")
    assert env.is_file(), f"rule {rule.name} ({rule.where}): conda env {env} does not exist"
    assert env.parent == REPO / "envs", f"rule {rule.name}: conda env {env} is not under envs/"


@pytest.mark.parametrize("rule", SCRIPT_RULES, ids=lambda r: r.name)
def test_env_provides_every_import(rule):
    script = rule.path_of("script")
    assert script.is_file(), f"rule {rule.name} ({rule.where}): script {script} does not exist"
    env_path = rule.path_of("conda")
    assert env_path is not None and env_path.is_file(), f"rule {rule.name} ({rule.where}) has no usable conda env"
    env = read_env(env_path)
    problems = []
    for module, where in sorted(third_party_imports(script).items()):
        shown = ", ".join(where[:3]) + (f" and {len(where) - 3} more" if len(where) > 3 else "")
        if module in PROVIDED_BY_SNAKEMAKE:
            continue
        if module == PACKAGE:
            if not any(_editable_path(env_path, p) == REPO for p in env.editable):
                problems.append(f"module '{PACKAGE}' (imported by {shown}) is not installed by {env.rel}: "
                                "add '-e ${WAKEPREP_ROOT}' under pip:")
            continue
        if module not in PROVIDERS:
            problems.append(f"module '{module}' (imported by {shown}) is not in PROVIDERS of tests/test_envs.py: "
                            "add it with the conda-forge/PyPI package that provides it")
            continue
        if not PROVIDERS[module] & env.names:
            problems.append(f"module '{module}' (imported by {shown}) is not provided by {env.rel}: "
                            f"add one of {sorted(PROVIDERS[module])}")
    assert not problems, f"rule {rule.name} ({rule.where}), env {env.rel}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_is_pinned_and_installs_the_package(path):
    env = read_env(path)
    rel = env.rel
    assert env.channels == ["conda-forge", "nodefaults"], f"{rel}: channels should be [conda-forge, nodefaults]"
    assert re.fullmatch(r"python\s*=\s*3\.11", env.conda.get("python", "")), f"{rel}: pin python =3.11"
    assert "pip" in env.conda, f"{rel}: list pip among the conda dependencies (it installs the pip: section)"
    for name, spec in env.conda.items():
        if name == "pip":
            continue
        assert re.search(r"[=<>]\s*\d+\.\d+", spec), f"{rel}: '{spec}' has no version pin (e.g. '{name} =1.2')"
    for name, spec in env.pip.items():
        assert re.search(r"==\s*\d", spec), f"{rel}: pip '{spec}' is not pinned with =="
    assert any(_editable_path(path, p) == REPO for p in env.editable), (
        f"{rel}: does not install the wakeprep package itself ('-e ${{WAKEPREP_ROOT}}' under pip:)")


def test_envs_agree_on_versions():
    """A package pinned in several envs is pinned the same way in each."""
    specs: dict[str, dict[str, str]] = {}
    for path in ENV_FILES:
        env = read_env(path)
        for name, spec in list(env.conda.items()) + list(env.pip.items()):
            specs.setdefault(name, {})[env.rel] = re.sub(r"\s+", "", spec)
    clashes = {n: s for n, s in specs.items() if len(set(s.values())) > 1}
    assert not clashes, "different pins of one package: " + "; ".join(
        f"{n}: " + ", ".join(f"{f} {v}" for f, v in sorted(s.items())) for n, s in sorted(clashes.items()))


def test_every_env_is_used():
    used = {r.path_of("conda") for r in RULES if "conda" in r.directives}
    unused = [p.name for p in ENV_FILES if p.resolve() not in used]
    assert not unused, f"env files no rule names: {unused}"


def test_checker_sees_lazy_and_transitive_imports(tmp_path):
    """The checker itself: lazy imports in the functions a script calls and the
    import-time imports of the wakeprep modules loaded on the way are found; stdlib and
    TYPE_CHECKING imports are not."""
    script = REPO / "scripts" / "embed.py"
    needed = third_party_imports(script)
    assert "torch" in needed and "numpy" in needed and PACKAGE in needed
    assert "pymicro_features" in needed  # wakeprep.embed -> (lazily) .shards -> .features
    assert "faiss" in third_party_imports(REPO / "scripts" / "cluster_split.py")  # lazy, in wakeprep.split
    assert not set(needed) & set(sys.stdlib_module_names)
    src = tmp_path / "s.py"
    src.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pandas\n"
                   "def f():\n    import scipy.signal\n")
    assert [(m, lazy) for m, _, _, lazy in imports_in(src, None)] == [("typing", False), ("scipy.signal", True)]
