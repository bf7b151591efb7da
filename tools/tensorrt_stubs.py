"""Make tensorrt-stubs usable by mypy: copy them to a directory for MYPYPATH, fixing what does not parse.

tensorrt-stubs 10.13.0.35.1 (pybind11-stubgen output) installs `tensorrt/` and `tensorrt_bindings/` as
plain packages of .pyi files without `py.typed`, so mypy skips them ("missing library stubs or py.typed
marker"); and some signatures are not valid Python: parameters named `in` (a keyword), one parameter
without a default after defaulted ones (`add_scale_nd`), an import of `tensorrt_libs` that has no
stubs, and a module-level `bool: DataType` that turns every `-> bool` into an invalid type. Other errors
inside the stubs are silenced by pyproject's mypy override for `tensorrt.*`. This script copies both packages into the target directory and repairs exactly those lines; it
fails if a copied file still does not parse, so a new stubs release with new problems is noticed.

Usage: python tools/tensorrt_stubs.py TARGET_DIR
"""

from __future__ import annotations

import ast
import importlib.util
import re
import shutil
import sys
from pathlib import Path

PACKAGES = ("tensorrt", "tensorrt_bindings")
FIXES = (
    (re.compile(r"([(,] ?)in: "), r"\1in_: "),  # `in` is a keyword
    (re.compile(r"power: Weights = None, channel_axis: int\)"), "power: Weights = None, channel_axis: int = ...)"),
    (re.compile(r"^import tensorrt_libs as tensorrt_libs$", re.MULTILINE), "tensorrt_libs: object"),
    # `bool: DataType` shadows builtins.bool in every `-> bool` of the module; DataType.BOOL stays.
    (re.compile(r"^bool: DataType.*$", re.MULTILINE), ""),
)


def _site_packages_dir(package: str) -> Path:
    for entry in sys.path:
        candidate = Path(entry) / package / "__init__.pyi"
        if candidate.is_file():
            return candidate.parent
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{package} stubs are not installed: pip install tensorrt-stubs (see the Makefile's STUBS)")
    return Path(next(iter(spec.submodule_search_locations)))


def main(target: Path) -> int:
    for package in PACKAGES:
        source = _site_packages_dir(package)
        dest = target / package
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        for stub in sorted(source.glob("*.pyi")):
            text = stub.read_text(encoding="utf-8")
            for pattern, replacement in FIXES:
                text = pattern.sub(replacement, text)
            try:
                ast.parse(text, filename=str(stub))
            except SyntaxError as exc:
                print(f"{stub}:{exc.lineno}: still not valid Python after the fixes: {exc.msg}", file=sys.stderr)
                return 1
            (dest / stub.name).write_text(text, encoding="utf-8")
    print(f"tensorrt stubs ready in {target}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    raise SystemExit(main(Path(sys.argv[1])))
