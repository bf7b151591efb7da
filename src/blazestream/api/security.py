"""The API's token and the bind-address rule (credentials are redacted by `blazestream.uris`)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from blazestream.errors import ConfigError

TOKEN_ENV = "BLAZESTREAM_API_TOKEN"
MIN_TOKEN_LENGTH = 8


def load_token(token_file: Path | None) -> str | None:
    """The token from $BLAZESTREAM_API_TOKEN, else from `token_file`; None when neither is set."""
    value = os.environ.get(TOKEN_ENV)
    where = f"${TOKEN_ENV}"
    if not value and token_file is not None:
        try:
            value = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"api.token_file {token_file}: cannot read it ({exc.strerror})") from exc
        where = f"api.token_file {token_file}"
    if not value:
        if token_file is not None:
            raise ConfigError(f"api.token_file {token_file} is empty; put the token in it")
        return None
    value = value.strip()
    if len(value) < MIN_TOKEN_LENGTH or any(c.isspace() for c in value):
        raise ConfigError(f"{where}: the API token must be at least {MIN_TOKEN_LENGTH} characters, with no spaces")
    return value


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def check_bind(address: str, token: str | None) -> None:
    """Listening beyond this machine without a token would let anyone add cameras: refuse it."""
    if token is None and not is_loopback(address):
        raise ConfigError(
            f"api.address {address} is not a loopback address and no API token is set: anyone who can reach "
            f"it could add and remove cameras. Set ${TOKEN_ENV} (or api.token_file), or listen on 127.0.0.1"
        )
