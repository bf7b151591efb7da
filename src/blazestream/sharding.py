"""Which process runs which camera: rendezvous (highest random weight) hashing of camera ids over N shards.

Each camera goes to the shard with the highest `weight(camera, shard)`. The weight is a keyed blake2b of
the id, so every process (and the HTTP API, for cameras added at run time) computes the same answer
without talking to the others, and going from N to N+1 shards moves only the cameras the new shard wins
(about 1/(N+1) of them) while every other camera stays where it was.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from blazestream.errors import ConfigError

ENV_SHARD = "BLAZESTREAM_SHARD"
"""`I/N`, or a bare index `I` (a StatefulSet pod's ordinal) with N in `BLAZESTREAM_SHARDS`."""
ENV_SHARDS = "BLAZESTREAM_SHARDS"
MAX_SHARDS = 4096

_SPEC = re.compile(r"^\s*(\d+)\s*(?:/\s*(\d+)\s*)?$")


def weight(camera_id: str, shard: int) -> int:
    """The camera's random-looking but fixed weight on one shard (64 bits)."""
    digest = hashlib.blake2b(camera_id.encode(), digest_size=8, key=str(shard).encode()).digest()
    return int.from_bytes(digest, "big")


def owner(camera_id: str, n: int) -> int:
    """The shard (0..n-1) that runs `camera_id` when there are `n` shards."""
    if n < 1:
        raise ValueError(f"the number of shards must be at least 1, got {n}")
    return max(range(n), key=lambda shard: (weight(camera_id, shard), -shard))


def assign(camera_ids: Iterable[str], n: int) -> dict[int, list[str]]:
    """Every shard's cameras (in the given order), including shards that get none."""
    plan: dict[int, list[str]] = {shard: [] for shard in range(n)}
    for camera_id in camera_ids:
        plan[owner(camera_id, n)].append(camera_id)
    return plan


@dataclass(frozen=True)
class Shard:
    """This process's place: shard `index` of `count`."""

    index: int
    count: int

    def owns(self, camera_id: str) -> bool:
        return owner(camera_id, self.count) == self.index

    def refusal(self, camera_id: str) -> str | None:
        """None if this shard runs the camera; otherwise why not (for an API answering a camera add)."""
        other = owner(camera_id, self.count)
        if other == self.index:
            return None
        return f"camera {camera_id!r} belongs to shard {other}/{self.count}, not to this one ({self})"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(spec: str, *, name: str = "--shard", count: str | None = None) -> Shard:
    """`I/N` (0 <= I < N), or `I` with N given by `count`; ConfigError names `name` and the bad value."""
    usage = f"use I/N with 0 <= I < N (e.g. 2/3), or a bare index I with N in {ENV_SHARDS}"
    match = _SPEC.match(spec)
    if not match:
        raise ConfigError(f"{name} {spec!r}: not a shard; {usage}")
    index_text, count_text = match.groups()
    if count_text is None:
        if count is None or not count.strip():
            raise ConfigError(f"{name} {spec!r}: a bare index needs the number of shards in {ENV_SHARDS}; {usage}")
        if not count.strip().isdigit():
            raise ConfigError(f"{ENV_SHARDS} {count!r}: not a number of shards; {usage}")
        count_text = count.strip()
    index, total = int(index_text), int(count_text)
    if not 1 <= total <= MAX_SHARDS:
        raise ConfigError(f"{name} {spec!r}: the number of shards must be 1..{MAX_SHARDS}; {usage}")
    if index >= total:
        raise ConfigError(f"{name} {spec!r}: shard {index} does not exist among {total} (0..{total - 1}); {usage}")
    return Shard(index, total)


def shard_from(option: str | None, environ: Mapping[str, str] | None = None) -> Shard | None:
    """The shard from `--shard` if given, else from BLAZESTREAM_SHARD; None when neither is set."""
    env = os.environ if environ is None else environ
    if option is not None:
        return parse_shard(option, name="--shard", count=env.get(ENV_SHARDS))
    value = env.get(ENV_SHARD)
    if value is None or not value.strip():
        return None
    return parse_shard(value, name=ENV_SHARD, count=env.get(ENV_SHARDS))
