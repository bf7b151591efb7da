"""`blazestream image`: static mode over a list of files; one bad file never stops the others."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from blazestream.errors import InputError
from blazestream.estimator import PoseEstimator
from blazestream.files import atomic_write
from blazestream.images import load_image
from blazestream.outputs.annotate import draw_poses

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageReport:
    """The JSON document of `blazestream image` and how many inputs failed."""

    document: dict[str, Any]
    failed: int


def process_images(
    paths: Iterable[Path],
    estimator: PoseEstimator,
    *,
    annotate_dir: Path | None = None,
    on_done: Callable[[Path], None] | None = None,
    mask_dir: Path | None = None,
) -> ImageReport:
    """Run each image on its own; unreadable ones get an `error` entry and the rest go on.

    With `mask_dir` (needs an estimator with the segmentation head) each image's instance mask is written
    there as `<name>.mask.png` (pixel = pose index + 1, 0 = nobody) and its path goes in the entry's "mask".
    """
    entries: list[dict[str, Any]] = []
    failed = 0
    used_names: set[str] = set()
    used_masks: set[str] = set()
    if annotate_dir is not None:
        annotate_dir.mkdir(parents=True, exist_ok=True)
    if mask_dir is not None:
        mask_dir.mkdir(parents=True, exist_ok=True)
    for path in paths:
        entry: dict[str, Any] = {"path": str(path), "width": None, "height": None, "error": None, "poses": []}
        try:
            frame = load_image(path)
        except InputError as exc:
            entry["error"] = str(exc)
            failed += 1
            log.error("%s", exc)
        else:
            height, width = frame.shape[:2]
            found, masks = estimator.process_static_segmented([frame])
            poses, mask = found[0], masks[0]
            entry.update(width=width, height=height, poses=[p.to_json(width, height) for p in poses])
            if mask_dir is not None:
                if mask is None:
                    raise ValueError("masks asked for, but the estimator has no segmentation head")
                mask_path = mask_dir / _unique_png_name(path, used_masks, suffix=".mask.png")
                if not cv2.imwrite(str(mask_path), mask):
                    raise OSError(f"could not write {mask_path}")
                entry["mask"] = str(mask_path)
            if annotate_dir is not None:
                out = annotate_dir / _unique_png_name(path, used_names)
                drawn = draw_poses(frame.copy(), poses, mask=mask)
                if not cv2.imwrite(str(out), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR)):
                    raise OSError(f"could not write {out}")
        entries.append(entry)
        if on_done is not None:
            on_done(path)
    return ImageReport(document={"images": entries}, failed=failed)


def _unique_png_name(path: Path, used: set[str], suffix: str = ".png") -> str:
    """`photo.png` for photo.jpg; `photo-2.png` when another input already used that name."""
    name = f"{path.stem}{suffix}"
    counter = 2
    while name in used:
        name = f"{path.stem}-{counter}{suffix}"
        counter += 1
    used.add(name)
    return name


def write_json(document: dict[str, Any], target: str) -> None:
    """Write to a file atomically enough for readers (tmp + rename), or to stdout for '-'."""
    text = json.dumps(document, indent=1)
    if target == "-":
        print(text)
        return
    out = Path(target)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, text + "\n")
