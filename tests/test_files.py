"""The cache directory (platform/XDG, versioned model cache) and the one atomic-write helper."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from blazestream.files import atomic_write, cache_dir
from blazestream.models.cache import MEDIAPIPE_VERSION, MODELS, default_models_dir, ensure_models
from blazestream.trt_build.engine_cache import default_engines_dir


def test_atomic_write_replaces_whole_files_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    atomic_write(target, "first\n")
    atomic_write(target, b"second\n")
    assert target.read_text() == "second\n"
    assert os.listdir(tmp_path) == ["out.json"]
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "missing" / "x", "data")
    assert os.listdir(tmp_path) == ["out.json"]


def test_caches_follow_xdg_and_the_model_cache_is_versioned(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, models_dir: Path
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("BLAZESTREAM_MODELS", raising=False)
    monkeypatch.delenv("BLAZESTREAM_ENGINES", raising=False)
    assert cache_dir() == tmp_path / "blazestream"
    assert default_engines_dir() == tmp_path / "blazestream" / "engines"
    versioned = default_models_dir()
    assert versioned == tmp_path / "blazestream" / "models" / f"mediapipe-{MEDIAPIPE_VERSION}"
    # An unversioned cache of an earlier release seeds the new one: no download, only the conversion.
    legacy = tmp_path / "blazestream" / "models"
    legacy.mkdir(parents=True)
    for spec in MODELS.values():
        shutil.copy(models_dir / spec.tflite_filename, legacy / spec.tflite_filename)
    paths = ensure_models()
    assert paths.models_dir == versioned
    assert all(p.is_file() for p in paths.model_files())
    assert (legacy / MODELS["pose_detection"].tflite_filename).is_file(), "the old cache is left as it was"
