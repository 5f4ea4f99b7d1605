"""What a fresh install relies on: dependencies' public API only, and true version floors.

The floors themselves are proven by `.ci/run`, which installs the project a second time at
the lowest versions pyproject.toml allows (uv --resolution lowest-direct) and runs the
tests there; these tests keep the code from leaning on any one version's internals.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "llamavis"
# namedtuple's documented methods carry an underscore only to stay clear of field names
NAMEDTUPLE_API = {"_replace", "_asdict", "_fields", "_make"}


def private_uses(path: Path) -> list[str]:
    """Private modules or attributes of other packages that a module reaches for."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            modules = [node.module or ""]
        found += [f"import {m}" for m in modules
                  if not m.startswith("llamavis") and any(_private(part) for part in m.split("."))]
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("getattr", "hasattr"):
            name = node.args[1] if len(node.args) > 1 else None
            if isinstance(name, ast.Constant) and _private(str(name.value)):
                found.append(f"{node.func.id}(..., {name.value!r})")
        if isinstance(node, ast.Attribute) and _private(node.attr) \
                and node.attr not in NAMEDTUPLE_API:
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                found.append(f"{ast.unparse(node)}")
    return [f"{path.relative_to(ROOT)}: {use}" for use in found]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_llamavis_uses_no_private_module_or_attribute_of_a_dependency():
    uses = [use for path in sorted(PACKAGE.rglob("*.py")) for use in private_uses(path)]
    own = [use for use in uses if _own_module_attribute(use)]
    assert sorted(set(uses) - set(own)) == []


def _own_module_attribute(use: str) -> bool:
    """``images._helper`` reached from another llamavis module is ours to use."""
    target = use.split(": ", 1)[1].split(".")[0]
    return (PACKAGE / f"{target}.py").exists() or (PACKAGE / target).is_dir()


def test_the_python_floor_is_the_one_declared():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["requires-python"] == ">=3.11"
    assert project["tool"]["ruff"]["target-version"] == "py311"
    assert "Programming Language :: Python :: 3.11" in project["project"]["classifiers"]
    assert sys.version_info >= (3, 11)


@pytest.mark.parametrize("word", ["3.11"])
def test_readme_names_the_python_it_needs(word):
    assert f"Python {word}" in (ROOT / "README.md").read_text(encoding="utf-8")
