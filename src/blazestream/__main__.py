"""`python -m blazestream` is the same as the `blazestream` command."""

from blazestream.cli import app

app()
