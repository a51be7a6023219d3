"""Bad config values stop the run at start-up with one line naming the key."""

import copy

import pytest

from helpers import REPO, run_snakemake
from wakeprep.config import ConfigError, check_config

SCHEMA = REPO / "schemas" / "config.schema.yaml"


def base(tmp_path):
    (tmp_path / "a").mkdir(exist_ok=True)
    return {"corpora": [{"name": "a", "path": str(tmp_path / "a"), "label": "positive"}]}


CASES = [
    (lambda c: c.update(shard_size=0), "shard_size: 0 is less than the minimum of 1"),
    (lambda c: c.update(seed="x"), "seed: 'x' is not of type 'integer'"),
    (lambda c: c.update(bogus=1), "bogus: unknown key"),
    (lambda c: c["corpora"][0].update(label="postive"), "corpora[0].label: 'postive' is not one of"),
    (lambda c: c["corpora"][0].update(colour="red"), "corpora[0].colour: unknown key"),
    (lambda c: c["corpora"][0].update(name="a/b"), "corpora[0].name: 'a/b' does not match"),
    (lambda c: c["corpora"][0].update(split="dev"), "corpora[0].split: 'dev' is not one of"),
    (lambda c: c["corpora"][0].update(speaker_regex="(unclosed"), "corpora[0].speaker_regex: not a valid regular expression"),
    (lambda c: c["corpora"][0].pop("label"), "corpora[0]: 'label' is a required property"),
    (lambda c: c["corpora"][0].update(path="/no/such/folder"), "corpora[0].path: corpus 'a': folder '/no/such/folder' does not exist"),
    (lambda c: c["corpora"].append(dict(c["corpora"][0])), "corpora[1].name: 'a' is used by more than one corpus"),
    (lambda c: c.update(audio={"target_rate": 22050}), "audio.target_rate: 16000 was expected"),
    (lambda c: c.update(audio={"resample_quality": "best"}), "audio.resample_quality: 'best' is not one of"),
    (lambda c: c.update(audio={"min_duration_s": 5, "max_duration_s": 2}), "audio.min_duration_s: 5 must be below"),
    (lambda c: c.update(audio={"silence_dbfs": 3}), "audio.silence_dbfs: 3 is greater than the maximum of 0"),
    (lambda c: c.update(features={"pad_ms": -1}), "features.pad_ms: -1 is less than the minimum of 0"),
    (lambda c: c.update(corpora=[]), "corpora: [] should be non-empty"),
]


@pytest.mark.parametrize("mutate,message", CASES)
def test_check_config_names_the_key(tmp_path, mutate, message):
    cfg = base(tmp_path)
    check_config(copy.deepcopy(cfg), SCHEMA)  # the base is valid
    mutate(cfg)
    with pytest.raises(ConfigError) as e:
        check_config(cfg, SCHEMA)
    lines = str(e.value).splitlines()[1:]
    assert len(lines) == 1, lines
    assert message in lines[0]


def test_checks_across_keys_see_the_schema_defaults(tmp_path):
    """The checks across keys run on the config with the schema's defaults filled in: a key
    left out counts with its schema default, whatever that default is."""
    import yaml

    cfg = base(tmp_path)
    cfg["audio"] = {"min_duration_s": 2000}  # max_duration_s left out: the schema's 1800
    with pytest.raises(ConfigError, match=r"audio\.min_duration_s: 2000 must be below audio\.max_duration_s \(1800\)"):
        check_config(cfg, SCHEMA)
    schema = yaml.safe_load(SCHEMA.read_text())
    schema["properties"]["windows"]["properties"]["positive_s"]["default"] = 1.0
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(schema))
    cfg = base(tmp_path)
    with pytest.raises(ConfigError) as e:
        check_config(cfg, tmp_path / "schema.yaml")
    assert str(e.value).splitlines()[1:] == [
        "  export.trainer.clip_duration_ms: 1500 ms is longer than windows.positive_s (1.0 s): the trainer "
        "would pad every positive",
    ]
    cfg = base(tmp_path)
    check_config(cfg, SCHEMA)
    assert cfg["windows"]["positive_s"] == 3.2 and cfg["audio"]["max_duration_s"] == 1800  # filled in place


def test_snakemake_stops_with_the_message(tmp_path):
    cfg = base(tmp_path)
    cfg["corpora"][0]["label"] = "postive"
    proc = run_snakemake(tmp_path, "--dry-run", config=cfg, check=False)
    assert proc.returncode != 0
    assert "corpora[0].label: 'postive' is not one of" in proc.stdout + proc.stderr


def _leaves(schema, path=()):
    """Every property of the schema, with its JSON-schema node."""
    for key, node in schema.get("properties", {}).items():
        yield path + (key,), node
        if node.get("type") == "object":
            yield from _leaves(node, path + (key,))
    if "items" in schema and schema["items"].get("type") == "object":
        yield from _leaves(schema["items"], path + (0,))


def _bad_value(node):
    t = node.get("type")
    if "enum" in node or "const" in node:
        return "no-such-choice"
    if isinstance(t, list):
        return {"wrong": "type"}
    return {"integer": "x", "number": "x", "boolean": "maybe", "string": 12, "array": "x", "object": 5}[t]


def _set(cfg, path, value):
    node = cfg
    for p in path[:-1]:
        if isinstance(p, int):
            node = node[p]
        else:
            node = node.setdefault(p, {})
    node[path[-1]] = value


def test_every_key_in_the_schema_names_itself_when_bad(tmp_path):
    import yaml

    from wakeprep.config import key_path

    schema = yaml.safe_load(SCHEMA.read_text())
    leaves = list(_leaves(schema))
    assert len(leaves) > 40  # the whole schema, not a sample
    for path, node in leaves:
        cfg = base(tmp_path)
        cfg["split"] = {"ratios": {"train": 0.8, "validation": 0.1, "test": 0.1}}
        _set(cfg, path, _bad_value(node))
        with pytest.raises(ConfigError) as e:
            check_config(cfg, SCHEMA)
        lines = str(e.value).splitlines()[1:]
        assert len(lines) == 1 and lines[0].strip().startswith(key_path(path) + ":"), (path, lines)


def test_settings_defaults_are_the_schemas(tmp_path):
    """Each section's settings object, built from the section with the schema's defaults
    filled in, equals the one built from nothing: the library's defaults are the schema's."""
    from wakeprep.audio import AudioSettings
    from wakeprep.embed import EmbedSettings
    from wakeprep.export import ExportSettings
    from wakeprep.split import SpeakerSettings, SplitSettings
    from wakeprep.windows import WindowSettings

    cfg = base(tmp_path)
    check_config(cfg, SCHEMA)
    for cls, section in [(AudioSettings, "audio"), (EmbedSettings, "embed"), (SpeakerSettings, "speakers"),
                         (SplitSettings, "split"), (WindowSettings, "windows"), (ExportSettings, "export")]:
        assert cls.from_config(cfg[section]) == cls(), section
