"""The `blazestreampose` GStreamer element in a pipeline built with gst-launch syntax."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import DATA_DIR

pytestmark = [pytest.mark.gst, pytest.mark.slow]


@pytest.mark.timeout(180)
def test_element_posts_one_record_per_frame(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from blazestream.gst import gst
    from blazestream.plugins.pose_element import MESSAGE_NAME, register

    monkeypatch.setenv("BLAZESTREAM_MODELS", str(models_dir))
    register()
    Gst = gst()
    pipeline = Gst.parse_launch(
        f"filesrc location={DATA_DIR / 'messi_moves.mp4'} ! decodebin ! videoconvert ! video/x-raw,format=RGB "
        "! blazestreampose max-poses=2 ! fakesink"
    )
    bus = pipeline.get_bus()
    pipeline.set_state(Gst.State.PLAYING)
    records = []
    try:
        while True:
            kinds = Gst.MessageType.EOS | Gst.MessageType.ERROR | Gst.MessageType.ELEMENT
            message = bus.timed_pop_filtered(30 * Gst.SECOND, kinds)
            assert message is not None, "timed out"
            if message.type == Gst.MessageType.ERROR:
                pytest.fail(str(message.parse_error()))
            if message.type == Gst.MessageType.EOS:
                break
            structure = message.get_structure()
            if structure.get_name() == MESSAGE_NAME:
                records.append(json.loads(structure.get_string("record")))
    finally:
        pipeline.set_state(Gst.State.NULL)
    assert [r["frame"] for r in records] == list(range(250))
    assert sum(1 for r in records if r["poses"]) >= 240
    assert records[-1]["poses"][0]["landmarks"][0]["name"] == "nose"
