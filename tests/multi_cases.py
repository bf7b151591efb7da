"""Multi-person test scenes built from the bundled media, each person's reference being their own panel.

A scene is a canvas with panels pasted at known places (scaled, mirrored, time-offset copies of the
bundled photo and clip), so MediaPipe run on one panel alone says where that person's landmarks are;
mapped by the panel's offset and scale they are the reference in the composite.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
DATA = Path(__file__).resolve().parents[1] / "data"


@dataclass(frozen=True)
class Panel:
    """Where one person's panel sits in the composite: top-left corner and scale of the pasted copy."""

    x: int
    y: int
    scale: float
    mirror: bool


@cache
def clip_frames() -> tuple[Image, ...]:
    """Every frame of messi_moves.mp4 as RGB (250 frames, 640x480)."""
    capture = cv2.VideoCapture(str(DATA / "messi_moves.mp4"))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    assert frames, "cannot decode data/messi_moves.mp4"
    return tuple(frames)


def photo() -> Image:
    """messi5.jpg as RGB (548x342)."""
    bgr = cv2.imread(str(DATA / "messi5.jpg"), cv2.IMREAD_COLOR)
    assert bgr is not None
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def panel_image(source: Image, panel: Panel) -> Image:
    """The panel as pasted: scaled (area interpolation when shrinking) and maybe mirrored."""
    image = source[:, ::-1] if panel.mirror else source
    if panel.scale != 1.0:
        size = (round(source.shape[1] * panel.scale), round(source.shape[0] * panel.scale))
        interp = cv2.INTER_AREA if panel.scale < 1.0 else cv2.INTER_LINEAR
        image = cv2.resize(np.ascontiguousarray(image), size, interpolation=interp)
    return np.ascontiguousarray(image)


def compose(size: tuple[int, int], panels: list[tuple[Image, Panel]], background: int = 40) -> Image:
    """A (width, height) canvas of flat grey with the panel images pasted in order."""
    width, height = size
    canvas = np.full((height, width, 3), background, dtype=np.uint8)
    for image, panel in panels:
        h, w = image.shape[:2]
        canvas[panel.y : panel.y + h, panel.x : panel.x + w] = image
    return canvas


def to_composite(
    landmarks: npt.NDArray[np.floating], panel: Panel, panel_size: tuple[int, int]
) -> npt.NDArray[np.float64]:
    """Panel-normalized landmarks (33, >=2) to composite pixels (33, 2)."""
    width, height = panel_size
    x = np.asarray(landmarks)[:, 0] * width
    y = np.asarray(landmarks)[:, 1] * height
    return np.stack([x + panel.x, y + panel.y], axis=-1)


def pingpong(index: int, length: int) -> int:
    """Frame index that runs forward then backward through a clip, so long runs never jump."""
    period = 2 * length - 2
    i = index % period
    return i if i < length else period - i


GRID_PANELS = [
    (Panel(0, 0, 0.5, False), 0),
    (Panel(320, 0, 0.5, True), 60),
    (Panel(0, 240, 0.5, True), 125),
    (Panel(320, 240, 0.5, False), 190),
]
"""A 2x2 grid of 320x240 copies of the clip, two mirrored, each offset in time: (panel, frame offset)."""

GRID_SIZE = (640, 480)


def grid_frame(index: int) -> tuple[Image, list[Image]]:
    """Frame `index` of the grid clip and its four panel images."""
    frames = clip_frames()
    panels = [panel_image(frames[pingpong(index + offset, len(frames))], p) for p, offset in GRID_PANELS]
    return compose(GRID_SIZE, [(img, p) for img, (p, _) in zip(panels, GRID_PANELS, strict=True)]), panels


def photo_scenes() -> dict[str, tuple[Image, list[tuple[Image, Panel]]]]:
    """Still scenes: name -> (composite, [(panel image, panel)]). Sizes and mirroring vary per person."""
    base = photo()
    scenes: dict[str, list[Panel]] = {
        # Two people side by side at full size, one mirrored.
        "pair": [Panel(0, 0, 1.0, False), Panel(548, 0, 1.0, True)],
        # Three people of different sizes in a wide street-like strip.
        "sizes": [Panel(0, 40, 1.0, False), Panel(560, 110, 0.8, True), Panel(1010, 180, 0.6, False)],
        # Four people in a 2x2 grid at 60%.
        "grid": [
            Panel(0, 0, 0.6, False),
            Panel(329, 0, 0.6, True),
            Panel(0, 205, 0.6, True),
            Panel(329, 205, 0.6, False),
        ],
    }
    out = {}
    for name, panels in scenes.items():
        images = [panel_image(base, p) for p in panels]
        width = max(p.x + img.shape[1] for img, p in zip(images, panels, strict=True))
        height = max(p.y + img.shape[0] for img, p in zip(images, panels, strict=True))
        pairs = list(zip(images, panels, strict=True))
        out[name] = (compose((width, height), pairs), pairs)
    return out


def overlap_scene(
    person_mask: npt.NDArray[np.bool_], person_x: tuple[float, float]
) -> tuple[Image, list[tuple[Image, Panel]]]:
    """Two people overlapping by a third of their width: the photo, and its mirror image's person (cut out
    with `person_mask`, the photo's person mask) pasted over it to the right.

    person_x is the photo's person's landmark extent (xmin, xmax) in pixels; the references are the
    photo and its mirror image, each on its own.
    """
    base = photo()
    height, width = base.shape[:2]
    mirror = np.ascontiguousarray(base[:, ::-1])
    cut = person_mask[:, ::-1]
    xmin, xmax = person_x
    person_width = xmax - xmin
    shift = round(xmax - person_width / 3 - (width - xmax))
    canvas = np.full((height, width + shift, 3), 40, dtype=np.uint8)
    canvas[:, :width] = base
    region = canvas[:, shift : shift + width]
    region[cut] = mirror[cut]
    return canvas, [(base, Panel(0, 0, 1.0, False)), (mirror, Panel(shift, 0, 1.0, True))]
