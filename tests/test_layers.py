"""The package's floors: each folder imports only what lies below it (jmvae_core/__init__.py).

Every import of every module is read from its source, those inside functions included, so that
no deferred import can hide an edge that the layout forbids.
"""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jmvae_core"
GROUND = {"config", "environment"}
# floor -> the floors it may import (a floor may always import itself)
ALLOWED = {
    "ground": set(),
    "store": {"ground"},
    "nn": {"ground"},
    "models": {"ground", "nn"},
    "data": {"ground", "store"},
    "training": {"ground", "store", "nn", "models", "data"},
    "measure": {"ground", "store", "nn", "models", "data"},
    "pages": {"ground", "store", "models", "data"},
    "study": {"ground", "store", "nn", "models", "data", "training", "measure", "pages"},
}


def floor(module: str) -> str:
    """The floor of a module named relative to the package ('models.paper', 'config')."""
    top = module.split(".")[0]
    return "ground" if top in GROUND else top


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, imported name relative to jmvae_core) of every import of the package in `source`;
    third-party and standard-library imports as ('!' + top-level name)."""
    found = []
    here = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["jmvae_core", *here][: len(here) + 2 - node.level]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module
            # `from jmvae_core import models` names a module; `from x.y import f` names y
            targets = (
                [f"{stem}.{a.name}" for a in node.names]
                if node.module is None or (stem == "jmvae_core")
                else [stem]
            )
        else:
            continue
        for target in targets:
            if target == "jmvae_core" or target.startswith("jmvae_core."):
                name = target.removeprefix("jmvae_core").lstrip(".")
                if name:
                    found.append((node.lineno, name))
            else:
                found.append((node.lineno, "!" + target.split(".")[0]))
    return found


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    """What `source`, as the package's module `module`, imports against the layout."""
    mine = floor(module)
    out = []
    for line, name in imports(source, module, is_package):
        if name.startswith("!"):
            if mine == "ground" and name[1:] not in sys.stdlib_module_names:
                out.append(f"{module}:{line} imports {name[1:]}: the ground is standard library")
            continue
        theirs = floor(name)
        if theirs != mine and theirs not in ALLOWED[mine]:
            out.append(f"{module}:{line} imports {name}: {mine} may not import {theirs}")
    return out


def package_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def test_every_module_imports_only_what_lies_below_it():
    found = [
        v
        for path in package_modules()
        for v in violations(path.read_text(), module_name(path), path.name == "__init__.py")
    ]
    assert found == []


def test_every_module_lies_on_a_floor():
    floors = {floor(module_name(p)) for p in package_modules()}
    assert floors <= set(ALLOWED), floors - set(ALLOWED)


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("pages.tables", "from jmvae_core.training.fit import fit\n"),  # pages above training
        ("pages.tables", "def f():\n    from ..measure import estimators\n"),  # deferred
        ("training.fit", "from jmvae_core.pages import results\n"),  # the reading side
        ("measure.generate", "from jmvae_core import training\n"),  # measure beside training
        ("models.paper", "import jmvae_core.data.mnist\n"),  # models below data
        ("config", "import numpy\n"),  # the ground is standard library only
        ("store", "from .models import build_model\n"),
    ],
)
def test_a_forbidden_import_is_found(module, source):
    assert len(violations(source, module)) == 1


def test_allowed_imports_pass():
    assert violations("from jmvae_core.models import spec\nimport torch\n", "training.fit") == []
    assert violations("from . import paper\n", "models", is_package=True) == []
    assert violations("from .declaration import ModelSpec\n", "models.mvae") == []


def test_no_importlib_in_the_package():
    users = [str(p) for p in package_modules() if "importlib" in p.read_text()]
    assert users == []
