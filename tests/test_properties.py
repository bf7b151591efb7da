"""Property-based tests (hypothesis): config loading, source-URI parsing and the JSON contract's round trip.

Whatever the input, the config and URI parsers either accept it or raise their one documented error (a
ConfigError / ValueError naming the input, never another exception), and no password leaks into a message.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import astuple
from typing import Any
from urllib.parse import quote

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blazestream.config import AppConfig, load_config
from blazestream.errors import ConfigError
from blazestream.pose.skeleton import LANDMARK_NAMES
from blazestream.pose.types import Landmark, Pose, round_rows
from blazestream.results import FrameResult
from blazestream.source_spec import TEST_LIMITS, TEST_PATTERNS, SourceSpec, parse_source_uri
from blazestream.uris import redact_uri

SECRET = "s3cr3t-pw"

hosts = st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,10}){0,2}", fullmatch=True)
paths = st.from_regex(r"(/[A-Za-z0-9_.-]{1,12}){0,3}", fullmatch=True)
ports = st.integers(min_value=1, max_value=65535)


@st.composite
def videotest_uris(draw: st.DrawFn) -> str:
    options: dict[str, str] = {}
    if draw(st.booleans()):
        options["pattern"] = draw(st.sampled_from(TEST_PATTERNS))
    if draw(st.booleans()):
        options["width"] = str(draw(st.integers(*TEST_LIMITS["width"])))
        options["height"] = str(draw(st.integers(*TEST_LIMITS["height"])))
    if draw(st.booleans()):
        options["fps"] = str(draw(st.integers(*TEST_LIMITS["fps"])))
    return "test:" + ("?" + "&".join(f"{k}={v}" for k, v in options.items()) if options else "")


@given(uri=videotest_uris())
def test_valid_test_sources_parse_and_round_trip(uri: str) -> None:
    spec = parse_source_uri(uri, "cam")
    assert spec.kind == "test"
    assert spec.live
    assert parse_source_uri(spec.uri, "cam") == spec


@given(host=hosts, port=ports, path=paths, user=st.from_regex(r"[a-z]{1,8}", fullmatch=True))
def test_rtsp_sources_parse_and_never_show_their_password(host: str, port: int, path: str, user: str) -> None:
    uri = f"rtsp://{user}:{SECRET}@{host}:{port}{path}"
    spec = parse_source_uri(uri, "cam")
    assert spec == SourceSpec("cam", "rtsp", uri)
    assert parse_source_uri(spec.uri, "cam") == spec
    assert SECRET not in spec.display
    assert spec.display == redact_uri(uri)
    assert f"{host}:{port}" in spec.display


@settings(max_examples=300)
@given(text=st.text(max_size=60))
def test_any_text_is_a_source_or_a_clear_value_error(text: str) -> None:
    try:
        spec = parse_source_uri(text, "cam")
    except ValueError as exc:
        message = str(exc)
        assert message
        assert "use" in message or "needs" in message or "must" in message or "give" in message or "port" in message
    else:
        assert spec.kind in ("file", "rtsp", "v4l2", "test")


@settings(max_examples=200)
@given(
    bad=st.sampled_from(["fps", "width", "height"]),
    value=st.one_of(st.text(max_size=6), st.integers(-10, 10**6).map(str)),
)
def test_bad_test_source_numbers_are_rejected_by_name(bad: str, value: str) -> None:
    low, high = TEST_LIMITS[bad]
    pair = "&height=240" if bad == "width" else "&width=320" if bad == "height" else ""
    uri = f"test:?{bad}={quote(value, safe='')}{pair}"
    if value.isdigit() and value.isascii() and low <= int(value) <= high:
        assert parse_source_uri(uri).options
        return
    with pytest.raises(ValueError, match=bad):
        parse_source_uri(uri)


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=8))
config_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.sampled_from(["id", "uri", "max_poses", "fps", "url", "path", "port", "x"]), children, max_size=3
        ),
    ),
    max_leaves=8,
)
sections = st.sampled_from(
    ["cameras", "pose", "batch", "engine", "sources", "outputs", "deepstream", "duration_s", "x"]
)


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(sections, config_values, max_size=4))
def test_any_config_is_valid_or_a_config_error(data: dict[str, Any]) -> None:
    try:
        cfg: AppConfig | str = load_config(None, data)
    except ConfigError as exc:
        cfg = str(exc)
    assert isinstance(cfg, AppConfig) or cfg.startswith("invalid configuration")


@given(user=st.from_regex(r"[a-z]{1,6}", fullmatch=True), host=hosts, port=st.integers(65536, 99999))
def test_config_errors_never_print_passwords(user: str, host: str, port: int) -> None:
    for overrides in (
        {"cameras": [{"id": "c", "uri": f"rtsp://{user}:{SECRET}@{host}:{port}/x"}]},
        {"outputs": {"mqtt": {"url": f"mqtt://{user}:{SECRET}@{host}:{port}"}}},
    ):
        with pytest.raises(ConfigError) as raised:
            load_config(None, overrides)
        assert SECRET not in str(raised.value)
        assert host in str(raised.value)


unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
coordinate = st.floats(min_value=-0.5, max_value=1.5, allow_nan=False)


@st.composite
def poses(draw: st.DrawFn) -> Pose:
    landmarks = np.array(
        [[draw(coordinate), draw(coordinate), draw(coordinate), draw(unit), draw(unit)] for _ in range(33)],
        np.float32,
    )
    world = np.array([[draw(coordinate), draw(coordinate), draw(coordinate)] for _ in range(33)], np.float32)
    roi = [draw(unit), draw(unit), draw(unit), draw(unit), draw(st.floats(-math.pi, math.pi))]
    track = draw(st.one_of(st.none(), st.integers(0, 10**6)))
    return Pose.from_rows(
        score=draw(unit), presence=draw(unit), roi=roi, landmarks=landmarks, world_landmarks=world, track_id=track
    )


@settings(max_examples=50, deadline=None)
@given(
    found=st.lists(poses(), max_size=3),
    width=st.integers(16, 7680),
    height=st.integers(16, 4320),
    pts=st.floats(0, 1e6, allow_nan=False),
    frame=st.integers(0, 10**9),
)
def test_the_json_contract_round_trips(found: list[Pose], width: int, height: int, pts: float, frame: int) -> None:
    result = FrameResult("cam-1", frame, pts, width, height, tuple(found), None, 0.0)
    record = result.to_json()
    line = json.dumps(record, separators=(",", ":"), allow_nan=False)  # strict JSON: no NaN, no NumPy types
    back = json.loads(line)
    assert back == record
    assert set(back) == {"stream", "frame", "pts", "width", "height", "poses"}
    assert (back["stream"], back["frame"], back["width"], back["height"]) == ("cam-1", frame, width, height)
    assert abs(back["pts"] - pts) <= 5e-7 * max(1.0, pts)
    for pose, data in zip(found, back["poses"], strict=True):
        assert [lm["name"] for lm in data["landmarks"]] == list(LANDMARK_NAMES)
        assert ("track_id" in data) == (pose.track_id is not None)
        for lm, out in zip(pose.landmarks, data["landmarks"], strict=True):
            assert abs(out["x"] / width - lm.x) <= 1e-4 / width + 1e-6
            assert abs(out["y"] / height - lm.y) <= 1e-4 / height + 1e-6
            assert abs(out["visibility"] - lm.visibility) <= 1e-6
        assert len(data["world_landmarks"]) == 33


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(
        st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=8, max_size=8), min_size=1, max_size=20
    ),
    digits=st.lists(st.integers(0, 8), min_size=8, max_size=8),
)
def test_round_rows_is_pythons_round_bit_for_bit(values: list[list[float]], digits: list[int]) -> None:
    rows = np.asarray(values, np.float64)
    got = round_rows(rows, digits)
    for row, out in zip(rows.tolist(), got, strict=True):
        want = [round(v, n) for v, n in zip(row, digits, strict=True)]
        assert [struct.pack("d", v) for v in out] == [struct.pack("d", v) for v in want]


@settings(max_examples=50, deadline=None)
@given(pose=poses(), width=st.integers(16, 7680), height=st.integers(16, 4320))
def test_pose_json_is_rounded_by_python_round(pose: Pose, width: int, height: int) -> None:
    """The vectorized rounding gives the text per-value round() gives (the contract's exact digits)."""
    data = pose.to_json(width, height)
    want = [
        {
            "name": name,
            "x": round(lm.x * width, 4),
            "y": round(lm.y * height, 4),
            "z": round(lm.z * width, 4),
            "visibility": round(lm.visibility, 6),
            "presence": round(lm.presence, 6),
        }
        for name, lm in zip(LANDMARK_NAMES, pose.landmarks, strict=True)
    ]
    world = [
        {"name": name, "x": round(w.x, 6), "y": round(w.y, 6), "z": round(w.z, 6)}
        for name, w in zip(LANDMARK_NAMES, pose.world_landmarks, strict=True)
    ]
    assert orjson.dumps(data["landmarks"]) == orjson.dumps(want)
    assert orjson.dumps(data["world_landmarks"]) == orjson.dumps(world)
    rebuilt = Pose(pose.score, pose.presence, pose.roi, pose.landmarks, pose.world_landmarks, pose.track_id)
    assert rebuilt == pose
    assert [Landmark(*astuple(lm)) for lm in pose.landmarks] == list(pose.landmarks)
