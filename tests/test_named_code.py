"""Every `jmvae_core...` name the book, the README and the notebooks show a reader resolves to
a module or an attribute of one, so that moving code cannot leave the text pointing nowhere."""

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NAME = re.compile(r"\bjmvae_core(?:\.[A-Za-z_][A-Za-z_0-9]*)+")


def _texts():
    yield from sorted((ROOT / "book").glob("*.md"))
    yield ROOT / "README.md"
    yield from sorted((ROOT / "notebooks").glob("*.ipynb"))


def _resolves(name: str) -> bool:
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_the_checker_tells_a_moved_name_from_a_present_one():
    assert _resolves("jmvae_core.models.paper.jmvae_kl_loss")
    assert not _resolves("jmvae_core.objectives.jmvae_kl_loss")
    assert not _resolves("jmvae_core.models.paper.no_such_function")


@pytest.mark.parametrize("path", list(_texts()), ids=lambda p: p.name)
def test_every_named_module_or_function_exists(path):
    names = sorted(set(NAME.findall(path.read_text())))
    missing = [n for n in names if not _resolves(n)]
    assert not missing, f"{path.name} names code that does not exist: {missing}"
