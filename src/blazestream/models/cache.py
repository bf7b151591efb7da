"""The model cache: MediaPipe's BlazePose TFLite files, taken from the mediapipe wheel, converted to ONNX.

blazestream does not redistribute the models. ``ensure_models`` takes the two .tflite files from the
mediapipe 0.10.21 wheel (a wheel file you name, the installed ``mediapipe`` package, or ``pip download``),
checks their sha256, converts them and records everything in ``manifest.json``. Later runs read the
manifest and do nothing; ``load_model_paths`` is the cheap check the pipeline uses at start-up.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

from blazestream import MEDIAPIPE_VERSION
from blazestream.engines.errors import ModelChecksumError, ModelFetchError, ModelsMissingError
from blazestream.files import atomic_write, cache_dir
from blazestream.models.tflite_onnx.version import CONVERTER_VERSION

MANIFEST_FORMAT = 1
MANIFEST_NAME = "manifest.json"
INPUT_NAME = "input"
SEGMENTATION_OUTPUT = "segmentation"
# The .tflite files are the same in every mediapipe 0.10.21 wheel; pin one so pip finds it from any host.
PIP_WHEEL_PLATFORM = ("manylinux_2_28_x86_64", "311", "cp")

ProgressCallback = Callable[[str, int, int], None]
"""``progress(step, done, total)``: ``step`` describes the work starting now, ``done`` steps are finished."""


@dataclass(frozen=True)
class ModelSpec:
    """One MediaPipe model: where it is in the wheel, its checksum, its input and its output names."""

    name: str
    wheel_member: str
    sha256: str
    input_size: int
    input_range: tuple[float, float]
    outputs: tuple[tuple[str, str], ...]  # (TFLite output name, ONNX output name)

    @property
    def tflite_filename(self) -> str:
        return f"{self.name}.tflite"

    @property
    def onnx_filename(self) -> str:
        return f"{self.name}.onnx"


POSE_DETECTION = ModelSpec(
    name="pose_detection",
    wheel_member="mediapipe/modules/pose_detection/pose_detection.tflite",
    sha256="9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
    input_size=224,
    input_range=(-1.0, 1.0),
    outputs=(("Identity", "boxes"), ("Identity_1", "scores")),
)
POSE_LANDMARK_FULL = ModelSpec(
    name="pose_landmark_full",
    wheel_member="mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
    sha256="e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
    input_size=256,
    input_range=(0.0, 1.0),
    outputs=(
        ("Identity", "landmarks"),
        ("Identity_1", "pose_flag"),
        ("Identity_2", SEGMENTATION_OUTPUT),
        ("Identity_3", "heatmap"),
        ("Identity_4", "world_landmarks"),
    ),
)
MODELS: Mapping[str, ModelSpec] = MappingProxyType({s.name: s for s in (POSE_DETECTION, POSE_LANDMARK_FULL)})
NOSEG_ONNX_FILENAME = "pose_landmark_full_noseg.onnx"


@dataclass(frozen=True)
class ModelPaths:
    """Where the cached model files are (they exist once ``ensure_models`` has returned)."""

    models_dir: Path
    detector_tflite: Path
    landmark_tflite: Path
    detector_onnx: Path
    landmark_onnx: Path
    """All five outputs, segmentation included."""
    landmark_noseg_onnx: Path
    """Without the segmentation head: 9% fewer multiply-adds, a third less activation traffic, and about
    40% faster on a CPU."""
    manifest: Path

    @classmethod
    def in_dir(cls, models_dir: Path) -> ModelPaths:
        return cls(
            models_dir=models_dir,
            detector_tflite=models_dir / POSE_DETECTION.tflite_filename,
            landmark_tflite=models_dir / POSE_LANDMARK_FULL.tflite_filename,
            detector_onnx=models_dir / POSE_DETECTION.onnx_filename,
            landmark_onnx=models_dir / POSE_LANDMARK_FULL.onnx_filename,
            landmark_noseg_onnx=models_dir / NOSEG_ONNX_FILENAME,
            manifest=models_dir / MANIFEST_NAME,
        )

    def model_files(self) -> tuple[Path, ...]:
        """Every cached model file, the manifest excluded."""
        return tuple(getattr(self, f.name) for f in fields(self) if f.name not in ("models_dir", "manifest"))

    def all(self) -> tuple[Path, ...]:
        """Every file of the cache, the manifest last."""
        return (*self.model_files(), self.manifest)


MODELS_SUBDIR = f"models/mediapipe-{MEDIAPIPE_VERSION}"
"""Versioned: another MediaPipe release gets a cache of its own, never overwriting this one."""


def default_models_dir() -> Path:
    """``$BLAZESTREAM_MODELS`` if set, else ``<user cache>/blazestream/models/mediapipe-<version>``."""
    configured = os.environ.get("BLAZESTREAM_MODELS")
    if configured:
        return Path(configured).expanduser()
    return cache_dir() / MODELS_SUBDIR


def _legacy_models_dir() -> Path:
    """The unversioned cache of earlier releases: its .tflite files (checked by sha256) seed the new one."""
    return cache_dir() / "models"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify(spec: ModelSpec, data: bytes, source: str) -> bytes:
    actual = hashlib.sha256(data).hexdigest()
    if actual != spec.sha256:
        raise ModelChecksumError(
            f"{spec.tflite_filename} from {source} has sha256 {actual}, expected {spec.sha256}: "
            f"it is not the file of mediapipe {MEDIAPIPE_VERSION} (corrupt download or a different wheel)"
        )
    return data


def _read_wheel(wheel: Path, specs: tuple[ModelSpec, ...]) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = set(archive.namelist())
            missing = [s.wheel_member for s in specs if s.wheel_member not in names]
            if missing:
                raise ModelFetchError(
                    f"{wheel} has no {', '.join(missing)}; is it the mediapipe {MEDIAPIPE_VERSION} wheel?"
                )
            return {s.name: _verify(s, archive.read(s.wheel_member), str(wheel)) for s in specs}
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelFetchError(f"cannot read the mediapipe wheel {wheel}: {exc}") from exc


def _read_installed(specs: tuple[ModelSpec, ...]) -> dict[str, bytes] | None:
    """The files of a ``mediapipe`` package installed in this interpreter (not imported: that is slow)."""
    try:
        dist = importlib.metadata.distribution("mediapipe")
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != MEDIAPIPE_VERSION:
        return None
    found: dict[str, bytes] = {}
    for spec in specs:
        path = Path(str(dist.locate_file(spec.wheel_member)))
        if not path.is_file():
            return None
        found[spec.name] = _verify(spec, path.read_bytes(), f"the installed mediapipe ({path})")
    return found


@contextlib.contextmanager
def _pip_download() -> Iterator[Path]:
    """Downloads the mediapipe wheel with this interpreter's pip into a temporary directory."""
    platform, python_version, implementation = PIP_WHEEL_PLATFORM
    with tempfile.TemporaryDirectory(prefix="blazestream-mediapipe-") as tmp:
        command = [
            sys.executable, "-m", "pip", "download", f"mediapipe=={MEDIAPIPE_VERSION}", "--no-deps",
            "--only-binary=:all:", "--platform", platform, "--python-version", python_version,
            "--implementation", implementation, "-d", tmp,
        ]  # fmt: skip
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False)
        except OSError as exc:
            raise ModelFetchError(f"cannot run pip ({exc})") from exc
        wheels = sorted(Path(tmp).glob("mediapipe-*.whl"))
        if result.returncode != 0 or not wheels:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
            raise ModelFetchError(
                f"`pip download mediapipe=={MEDIAPIPE_VERSION}` failed (exit {result.returncode}):\n{tail}\n"
                f"Without access to PyPI, download mediapipe-{MEDIAPIPE_VERSION}-cp311-cp311-"
                f"{platform}.whl elsewhere and pass it: `blazestream models --wheel PATH`."
            )
        yield wheels[0]


def _installed_mediapipe_matches() -> bool:
    try:
        return importlib.metadata.version("mediapipe") == MEDIAPIPE_VERSION
    except importlib.metadata.PackageNotFoundError:
        return False


def _fetch_description(wheel: Path | str | None) -> str:
    if wheel is not None:
        return f"Extracting the models from {Path(wheel).name}"
    if _installed_mediapipe_matches():
        return f"Copying the models from the installed mediapipe {MEDIAPIPE_VERSION}"
    return f"Downloading mediapipe {MEDIAPIPE_VERSION} with pip"


def _fetch_tflite(specs: tuple[ModelSpec, ...], wheel: Path | None) -> dict[str, bytes]:
    """The .tflite bytes of ``specs``: from ``wheel``, else the installed mediapipe, else ``pip download``."""
    if wheel is not None:
        return _read_wheel(wheel, specs)
    installed = _read_installed(specs)
    if installed is not None:
        return installed
    with _pip_download() as downloaded:
        return _read_wheel(downloaded, specs)


def _expected_manifest_keys() -> set[str]:
    return {p.name for p in ModelPaths.in_dir(Path()).model_files()}


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _manifest_problem(paths: ModelPaths, manifest: dict[str, Any] | None, *, check_hashes: bool) -> str | None:
    """Why the cache is not usable as it is, or None when it is."""
    if manifest is None:
        return f"{paths.manifest.name} is missing or unreadable"
    if manifest.get("format") != MANIFEST_FORMAT or manifest.get("mediapipe_version") != MEDIAPIPE_VERSION:
        return f"{paths.manifest.name} is from another blazestream version"
    if manifest.get("converter_version") != CONVERTER_VERSION:
        return (
            f"the models were converted by converter {manifest.get('converter_version')}, "
            f"this blazestream uses {CONVERTER_VERSION}"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != _expected_manifest_keys():
        return f"{paths.manifest.name} does not list the expected files"
    for spec in MODELS.values():
        if files[spec.tflite_filename] != spec.sha256:
            return f"{spec.tflite_filename} in {paths.manifest.name} has the wrong sha256"
    missing = [p.name for p in paths.model_files() if not p.is_file()]
    if missing:
        return f"missing {', '.join(missing)}"
    if check_hashes:
        changed = [p.name for p in paths.model_files() if sha256_of(p) != files[p.name]]
        if changed:
            return f"{', '.join(changed)} changed since conversion"
    return None


def load_model_paths(models_dir: Path | str | None = None) -> ModelPaths:
    """The paths of the cached models; ModelsMissingError (saying to run `blazestream models`) if unusable.

    Cheap: reads the manifest and checks that the files exist, without hashing them.
    """
    paths = ModelPaths.in_dir(Path(models_dir) if models_dir is not None else default_models_dir())
    problem = _manifest_problem(paths, _read_manifest(paths.manifest), check_hashes=False)
    if problem is not None:
        raise ModelsMissingError(
            f"The BlazePose models in {paths.models_dir} are not ready ({problem}). Run `blazestream models` "
            "to fetch and convert them (set BLAZESTREAM_MODELS to use another directory)."
        )
    return paths


def ensure_models(
    models_dir: Path | str | None = None,
    *,
    wheel: Path | str | None = None,
    force: bool = False,
    progress: ProgressCallback | None = None,
) -> ModelPaths:
    """Makes ``models_dir`` hold both .tflite files, their ONNX conversions and ``manifest.json``.

    Does nothing when the manifest matches the files, the converter version and the expected checksums
    (unless ``force``). Cached .tflite files with the right sha256 are reused; otherwise they come from
    ``wheel`` if given, else from an installed mediapipe 0.10.21, else from ``pip download``. Every file is
    written atomically and the manifest last, so an interrupted run is simply redone.

    ``progress(step, done, total)`` is called with ``(step, 0, 1)`` when a step starts and ``(step, 1, 1)``
    when it ends, one distinct ``step`` text per step.
    """
    paths = ModelPaths.in_dir(Path(models_dir) if models_dir is not None else default_models_dir())

    @contextlib.contextmanager
    def step(text: str) -> Iterator[None]:
        if progress is not None:
            progress(text, 0, 1)
        yield
        if progress is not None:
            progress(text, 1, 1)

    if not force and _manifest_problem(paths, _read_manifest(paths.manifest), check_hashes=True) is None:
        with step(f"Models in {paths.models_dir} are up to date"):
            return paths
    try:
        paths.models_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelFetchError(f"cannot create the models directory {paths.models_dir}: {exc}") from exc

    tflite: dict[str, bytes] = {}
    # The default cache may be seeded from the unversioned one of earlier releases (same files, checked).
    seeds = [_legacy_models_dir()] if wheel is None and paths.models_dir == default_models_dir() else []
    for spec in MODELS.values():
        for folder in (paths.models_dir, *seeds):
            cached = folder / spec.tflite_filename
            if force or spec.name in tflite or not cached.is_file():
                continue
            data = cached.read_bytes()
            if hashlib.sha256(data).hexdigest() == spec.sha256:
                tflite[spec.name] = data
                if folder != paths.models_dir:
                    atomic_write(paths.models_dir / spec.tflite_filename, data)
    missing = tuple(spec for spec in MODELS.values() if spec.name not in tflite)
    if missing:
        with step(_fetch_description(wheel)):
            fetched = _fetch_tflite(missing, Path(wheel) if wheel is not None else None)
            for spec in missing:
                atomic_write(paths.models_dir / spec.tflite_filename, fetched[spec.name])
        tflite.update(fetched)

    conversions = (
        (POSE_DETECTION, paths.detector_onnx, ()),
        (POSE_LANDMARK_FULL, paths.landmark_onnx, ()),
        (POSE_LANDMARK_FULL, paths.landmark_noseg_onnx, (SEGMENTATION_OUTPUT,)),
    )
    for spec, target, drop in conversions:
        with step(f"Converting {target.name}"):
            from blazestream.models.tflite_onnx.convert import convert_tflite

            model = convert_tflite(
                tflite[spec.name],
                input_name=INPUT_NAME,
                output_names=dict(spec.outputs),
                drop_outputs=drop,
                model_name=spec.tflite_filename,
            )
            atomic_write(target, model.SerializeToString())

    manifest = {
        "format": MANIFEST_FORMAT,
        "mediapipe_version": MEDIAPIPE_VERSION,
        "converter_version": CONVERTER_VERSION,
        "files": {p.name: sha256_of(p) for p in paths.model_files()},
    }
    atomic_write(paths.manifest, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return paths
