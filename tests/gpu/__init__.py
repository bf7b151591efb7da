"""GPU tests (pytest -m gpu); a package so that its conftest does not shadow tests/conftest.py."""
