"""Shared fixtures. The converted models live in the user's model cache, so repeated test runs reuse them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from blazestream.engines.models import ModelPaths

# `make venv` installs blazestream in editable mode; a bare checkout still finds it under src/.
if importlib.util.find_spec("blazestream") is None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

DATA_DIR = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="session")
def model_paths() -> ModelPaths:
    """The models in ``$BLAZESTREAM_MODELS`` (or ~/.cache/blazestream/models), made if needed."""
    from blazestream.engines.models import default_models_dir, ensure_models

    return ensure_models(default_models_dir())


@pytest.fixture(scope="session")
def models_dir(model_paths: ModelPaths) -> Path:
    """The model cache directory, after ``ensure_models`` has filled it."""
    return model_paths.models_dir
