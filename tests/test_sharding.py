"""Sharding cameras across processes: the rendezvous rule, its stability, the --shard/--list command line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from blazestream.errors import ConfigError
from blazestream.sharding import ENV_SHARD, ENV_SHARDS, Shard, assign, owner, parse_shard, shard_from

SIX = ["lobby", "door", "dock-1", "dock-2", "yard", "gate"]


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_every_camera_has_exactly_one_owner(n: int) -> None:
    plan = assign(SIX, n)
    assert sorted(plan) == list(range(n))
    served = [camera for cameras in plan.values() for camera in cameras]
    assert sorted(served) == sorted(SIX)
    for shard, cameras in plan.items():
        assert all(Shard(shard, n).owns(c) for c in cameras)
        assert not any(Shard(shard, n).owns(c) for c in SIX if c not in cameras)


def test_the_rule_is_fixed_across_processes_and_versions() -> None:
    # Replicas of different releases must agree: these values pin the hash (blake2b keyed by the shard).
    assert [owner(c, 3) for c in SIX] == [2, 0, 2, 1, 1, 2]
    assert [owner(c, 2) for c in SIX] == [0, 0, 1, 1, 1, 1]
    assert owner("anything", 1) == 0


def test_adding_a_shard_moves_only_the_cameras_the_new_shard_takes() -> None:
    cameras = [f"cam-{i:04d}" for i in range(3000)]
    for n in (2, 3, 5):
        before = {c: owner(c, n) for c in cameras}
        after = {c: owner(c, n + 1) for c in cameras}
        moved = [c for c in cameras if before[c] != after[c]]
        assert all(after[c] == n for c in moved), "a camera moved between old shards"
        assert len(moved) == pytest.approx(len(cameras) / (n + 1), rel=0.15)
        load = Counter(after.values())
        assert max(load.values()) < 1.2 * len(cameras) / (n + 1), load


def test_refusal_names_the_owning_shard() -> None:
    assert Shard(2, 3).refusal("lobby") is None
    message = Shard(0, 3).refusal("lobby")
    assert message is not None
    assert "shard 2/3" in message
    assert "'lobby'" in message


@pytest.mark.parametrize(
    ("spec", "count", "expected"),
    [("2/3", None, Shard(2, 3)), (" 0 / 1 ", None, Shard(0, 1)), ("1", "4", Shard(1, 4)), ("1/2", "9", Shard(1, 2))],
)
def test_parse_shard(spec: str, count: str | None, expected: Shard) -> None:
    assert parse_shard(spec, count=count) == expected


@pytest.mark.parametrize(
    ("spec", "count", "message"),
    [
        ("3/2", None, "shard 3 does not exist among 2"),
        ("2/2", None, "shard 2 does not exist among 2"),
        ("a/b", None, "not a shard"),
        ("-1/2", None, "not a shard"),
        ("1/0", None, "must be 1..4096"),
        ("", None, "not a shard"),
        ("1", None, "needs the number of shards in BLAZESTREAM_SHARDS"),
        ("1", "x", "BLAZESTREAM_SHARDS 'x'"),
    ],
)
def test_bad_shard_specs_are_named(spec: str, count: str | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_shard(spec, count=count)
    assert "--shard" in str(info.value) or "BLAZESTREAM_SHARDS" in str(info.value)


def test_option_wins_over_the_environment() -> None:
    env = {ENV_SHARD: "1", ENV_SHARDS: "3"}
    assert shard_from(None, env) == Shard(1, 3)
    assert shard_from("0/2", env) == Shard(0, 2)
    assert shard_from(None, {}) is None
    with pytest.raises(ConfigError, match=ENV_SHARD):
        shard_from(None, {ENV_SHARD: "5/3"})


# ---------------------------------------------------------------- the command line


def _write_config(path: Path, cameras: list[str]) -> Path:
    path.write_text("cameras:\n" + "".join(f"  - {{id: {c}, uri: 'test:'}}\n" for c in cameras))
    return path


def _blazestream(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in (ENV_SHARD, ENV_SHARDS)} | env
    cmd = [sys.executable, "-m", "blazestream", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=60)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("n", [2, 3])
def test_list_shards_cover_a_six_camera_config_exactly_once(tmp_path: Path, n: int) -> None:
    config = _write_config(tmp_path / "six.yaml", SIX)
    listed: list[str] = []
    for index in range(n):
        done = _blazestream("run", str(config), "--shard", f"{index}/{n}", "--list")
        assert done.returncode == 0, done.stderr
        ids = done.stdout.split()
        assert ids == assign(SIX, n)[index]
        assert f"shard {index}/{n}: {len(ids)} of 6 camera(s)" in done.stderr
        listed += ids
    assert sorted(listed) == sorted(SIX)
    # the StatefulSet form: a bare ordinal with the count beside it
    done = _blazestream("run", str(config), "--list", BLAZESTREAM_SHARD="2", BLAZESTREAM_SHARDS="3")
    assert done.stdout.split() == assign(SIX, 3)[2]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("spec", "message"), [("3/2", "shard 3 does not exist"), ("a/b", "not a shard")])
def test_run_refuses_a_bad_shard_before_starting(tmp_path: Path, spec: str, message: str) -> None:
    config = _write_config(tmp_path / "six.yaml", SIX)
    done = _blazestream("run", str(config), "--shard", spec)
    assert done.returncode == 2
    assert f"--shard {spec!r}" in done.stderr
    assert message in done.stderr
    done = _blazestream("run", str(config), BLAZESTREAM_SHARD=spec)
    assert done.returncode == 2
    assert f"BLAZESTREAM_SHARD {spec!r}" in done.stderr


@pytest.mark.timeout(60)
def test_a_shard_without_cameras_stays_up_idle(tmp_path: Path) -> None:
    config = _write_config(tmp_path / "one.yaml", ["lobby"])  # owned by shard 0 of 2
    done = _blazestream("run", str(config), "--shard", "1/2", "--duration", "1")
    assert done.returncode == 0, done.stderr
    assert "owns none of the configured cameras" in done.stderr
    assert "stopped by --duration 1 s reached" in done.stderr
