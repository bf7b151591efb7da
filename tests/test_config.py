"""The configuration: configs/default.yaml documents exactly the schema, and bad input is explained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from blazestream.config import AppConfig, load_config
from blazestream.errors import ConfigError
from blazestream.source_spec import parse_source_uri

DEFAULT = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        keys.add(prefix + name)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _keys(annotation, f"{prefix}{name}.")
    return keys


def _yaml_keys(data: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for name, value in data.items():
        keys.add(prefix + name)
        if isinstance(value, dict):
            keys |= _yaml_keys(value, f"{prefix}{name}.")
    return keys


def test_default_yaml_lists_every_key_with_the_schema_defaults() -> None:
    data = yaml.safe_load(DEFAULT.read_text())
    assert _yaml_keys(data) == _keys(AppConfig)
    assert load_config(DEFAULT) == AppConfig()


def test_every_key_is_commented() -> None:
    text = DEFAULT.read_text()
    assert text.count("#") > 40


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("pose:\n  max_pose: 2\n", "did you mean 'max_poses'"),
        ("outputs:\n  jsonl_path: x\n", "did you mean 'jsonl'"),
        ("cameras:\n  - id: a\n    uri: 'test:'\n    url: x\n", "unknown key 'cameras.0.url'"),
        ("pose:\n  min_presence: 2\n", "pose.min_presence"),
        ("cameras:\n  - {id: a, uri: 'test:'}\n  - {id: a, uri: 'test:'}\n", "repeated: a"),
        ("cameras:\n  - {id: 'bad id', uri: 'test:'}\n", "cameras.0.id"),
        ("- just\n- a list\n", "must be a mapping"),
    ],
)
def test_bad_config_is_explained(tmp_path: Path, yaml_text: str, expected: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("uri", "kind", "live"),
    [
        ("data/clip.mp4", "file", False),
        ("file:///videos/a.mp4", "file", False),
        ("rtsp://user:pw@192.0.2.1:8554/cam", "rtsp", True),
        ("v4l2:///dev/video0", "v4l2", True),
        ("test:", "test", True),
        ("test:?pattern=smpte&fps=10", "test", True),
    ],
)
def test_source_uris(uri: str, kind: str, live: bool) -> None:
    spec = parse_source_uri(uri)
    assert (spec.kind, spec.live) == (kind, live)


@pytest.mark.parametrize("uri", ["", "rtsp://", "rtsp:/x", "ftp://host/x", "v4l2://video0", "rtsp://h:99999/x"])
def test_malformed_uris(uri: str) -> None:
    with pytest.raises(ValueError, match=r"source|URI|scheme|port|V4L2|malformed"):
        parse_source_uri(uri)
