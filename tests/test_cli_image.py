"""`blazestream image` end to end through the real command: the JSON contract and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from conftest import DATA_DIR

LANDMARK_KEYS = {"name", "x", "y", "z", "visibility", "presence"}


def _run(args: list[str], models_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BLAZESTREAM_MODELS": str(models_dir)}
    return subprocess.run(
        [sys.executable, "-m", "blazestream", "image", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    bgr = cv2.imread(str(DATA_DIR / "messi5.jpg"))
    paths = {
        "good": DATA_DIR / "messi5.jpg",
        "missing": d / "no_such_photo.jpg",
        "corrupt": d / "corrupt.jpg",
        "text": d / "notes.png",
        "tiny": d / "one_pixel.png",
        "gray": d / "gray.png",
        "rgba": d / "rgba.png",
        "deep": d / "sixteen_bit.png",
        "pair": d / "two_people.png",
    }
    paths["corrupt"].write_bytes((DATA_DIR / "messi5.jpg").read_bytes()[:600])
    paths["text"].write_text("this is not an image\n")
    cv2.imwrite(str(paths["tiny"]), np.full((1, 1, 3), 128, np.uint8))
    cv2.imwrite(str(paths["gray"]), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(paths["rgba"]), cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(paths["deep"]), bgr.astype(np.uint16) * 257)
    person = bgr[:, 140:410]  # 270 px wide: two of them side by side stay large in the detector's square
    cv2.imwrite(str(paths["pair"]), np.concatenate([person, person[:, ::-1]], axis=1))
    return paths


def test_json_contract_and_annotation(models_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "poses.json"
    done = _run([str(DATA_DIR / "messi5.jpg"), "--json", str(out), "--annotate", str(tmp_path / "ann")], models_dir)
    assert done.returncode == 0, done.stderr
    doc = json.loads(out.read_text())
    (image,) = doc["images"]
    assert image["path"].endswith("messi5.jpg")
    assert (image["width"], image["height"], image["error"]) == (548, 342, None)
    (pose,) = image["poses"]
    assert 0.5 <= pose["score"] <= 1.0
    assert set(pose["roi"]) == {"x_center", "y_center", "size", "rotation"}
    assert len(pose["landmarks"]) == len(pose["world_landmarks"]) == 33
    assert set(pose["landmarks"][0]) == LANDMARK_KEYS
    assert pose["landmarks"][0]["name"] == "nose"
    assert pose["landmarks"][32]["name"] == "right_foot_index"
    xs = [lm["x"] for lm in pose["landmarks"]]
    ys = [lm["y"] for lm in pose["landmarks"]]
    assert 0 < min(xs) < max(xs) < 548, "x is in pixels of the input image"
    assert 0 < min(ys) < max(ys) < 342
    nose, hip = pose["landmarks"][0], pose["landmarks"][23]
    assert nose["y"] < hip["y"], "y grows downwards"
    png = tmp_path / "ann" / "messi5.png"
    drawn = cv2.imread(str(png))
    assert drawn is not None
    assert drawn.shape == (342, 548, 3)
    assert np.abs(drawn.astype(int) - cv2.imread(str(DATA_DIR / "messi5.jpg")).astype(int)).max() > 100


def _by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {Path(e["path"]).name: e for e in doc["images"]}


def test_bad_inputs_are_reported_and_the_rest_processed(
    models_dir: Path, inputs: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out.json"
    done = _run([*map(str, inputs.values()), "--json", str(out)], models_dir)
    assert done.returncode == 1, "exit 1 when any image failed"
    entries = _by_name(json.loads(out.read_text()))
    assert len(entries) == len(inputs), "every input has an entry, in order"
    for bad in ("missing", "corrupt", "text"):
        entry = entries[inputs[bad].name]
        assert entry["error"], bad
        assert inputs[bad].name in entry["error"], "the error names the file"
        assert entry["poses"] == []
        assert inputs[bad].name in done.stderr
    assert "no such file" in entries["no_such_photo.jpg"]["error"]
    assert "not a decodable image" in entries["notes.png"]["error"]
    for ok in ("good", "gray", "rgba", "deep"):
        entry = entries[inputs[ok].name]
        assert entry["error"] is None, (ok, entry["error"])
        assert (entry["width"], entry["height"]) == (548, 342)
        # MediaPipe finds nobody in the grayscale copy either (the parity tests check that agreement)
        assert len(entry["poses"]) == (0 if ok == "gray" else 1), ok
    tiny = entries["one_pixel.png"]
    assert (tiny["error"], tiny["poses"], tiny["width"]) == (None, [], 1)
    # the 16-bit copy holds the same picture: the same pose within a pixel
    good = entries["messi5.jpg"]["poses"][0]["landmarks"]
    deep = entries["sixteen_bit.png"]["poses"][0]["landmarks"]
    assert max(abs(a["x"] - b["x"]) + abs(a["y"] - b["y"]) for a, b in zip(good, deep, strict=True)) < 1.0


def test_max_poses_runs_several_people(models_dir: Path, inputs: dict[str, Path], tmp_path: Path) -> None:
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    assert _run([str(inputs["pair"]), "--json", str(one)], models_dir).returncode == 0
    assert _run([str(inputs["pair"]), "--json", str(two), "--max-poses", "2"], models_dir).returncode == 0
    assert len(json.loads(one.read_text())["images"][0]["poses"]) == 1, "MediaPipe's behaviour by default"
    poses = json.loads(two.read_text())["images"][0]["poses"]
    assert len(poses) == 2
    centres = sorted(p["roi"]["x_center"] for p in poses)
    assert centres[0] < 270 < centres[1], "one person in each half"


def test_missing_models_say_how_to_get_them(tmp_path: Path) -> None:
    done = _run([str(DATA_DIR / "messi5.jpg"), "--json", str(tmp_path / "x.json")], tmp_path / "empty")
    assert done.returncode == 2
    assert "blazestream models" in done.stderr
