"""The package list in pyproject.toml matches the source tree; kernels/ installs under graphflow."""

from __future__ import annotations

import importlib.util
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _package_folders() -> set[str]:
    found = set()
    for init in (ROOT / "graphflow").rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT)
        found.add(".".join(rel.parts))
    for init in (ROOT / "kernels").rglob("__init__.py"):
        rel = init.parent.relative_to(ROOT / "kernels")
        found.add(".".join(("graphflow", "kernels", *rel.parts)))
    return found


def test_every_package_folder_is_listed():
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^packages = \[(.*?)\]", text, re.S | re.M).group(1)
    listed = set(re.findall(r'"([^"]+)"', block))
    assert listed == _package_folders()


def test_kernels_install_as_graphflow_kernels_only():
    assert importlib.util.find_spec("graphflow.kernels") is not None
    spec = importlib.util.find_spec("kernels")
    # Only the repository's own folder could be found, never an installed top-level module.
    assert spec is None or pathlib.Path(spec.origin).parent == ROOT / "kernels"
