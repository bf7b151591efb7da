"""A video that turns corrupt mid-stream (bytes overwritten in the middle of the file): processed up to the
damage and past it where the decoder recovers, named in the summary, the other camera unaffected."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA_DIR

pytestmark = [pytest.mark.gst, pytest.mark.slow]

CLIP = DATA_DIR / "messi_moves.mp4"
CLIP_FRAMES = 250


@pytest.mark.timeout(300)
def test_a_video_corrupt_in_the_middle_is_processed_around_the_damage(models_dir: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.mp4"
    shutil.copy(CLIP, damaged)
    size = damaged.stat().st_size
    with damaged.open("r+b") as f:  # 64 KiB of noise in the middle of the media data (~ 5 s into the clip)
        f.seek(size // 2)
        f.write(random.Random(9).randbytes(64 * 1024))
    out = tmp_path / "poses.jsonl"
    env = {**os.environ, "BLAZESTREAM_MODELS": str(models_dir)}
    sources = ["--source", f"bad={damaged}", "--source", f"good={CLIP}"]
    done = subprocess.run(
        [sys.executable, "-m", "blazestream", "run", *sources, "--jsonl", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=280,
    )
    assert "Traceback" not in done.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    good = [r for r in records if r["stream"] == "good"]
    bad = [r for r in records if r["stream"] == "bad"]
    assert [r["frame"] for r in good] == list(range(CLIP_FRAMES)), "the other camera loses nothing"
    bad_pts = [r["pts"] for r in bad]
    assert bad_pts == sorted(bad_pts)
    before = [p for p in bad_pts if p < 4.5]
    assert len(before) == len([r for r in good if r["pts"] < 4.5]), "every frame before the damage"
    assert bad_pts[-1] > 9.0, "the decoder recovered: frames after the damage were processed too"
    assert sum(1 for r in bad if r["poses"]) >= 0.9 * len(bad)
    assert "bad" in done.stderr, "the damaged camera is named in the summary"
    if done.returncode != 0:  # a decoder that gives up instead of recovering must say which camera
        assert done.returncode == 1
        assert "damaged.mp4" in done.stderr
