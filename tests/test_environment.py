"""The study's folders and settings travel as one passed value (jmvae_core.environment): a
kernel started with it sees them, this process's environment never changes, and the package
has no import cycle (the run lifecycle, the executors and the pipeline import one way)."""

import ast
import json
import os
from pathlib import Path

import nbformat

from jmvae_core import environment
from jmvae_core.environment import Environment
from jmvae_core.study import execution

PACKAGE = Path(__file__).resolve().parents[1] / "jmvae_core"


def test_a_kernel_sees_the_environment_it_is_given_and_this_process_keeps_its_own(tmp_path):
    (tmp_path / "notebooks").mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell('out = "seen.json"', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(
            "import json, os\n"
            "from jmvae_core import environment\n"
            "keys = ['JMVAE_RESULTS_DIR', 'JMVAE_DATA_DIR', 'JMVAE_PLAN_OVERRIDES', "
            "'OMP_NUM_THREADS']\n"
            "seen = {k: os.environ.get(k) for k in keys}\n"
            "seen['root'] = str(environment.results_root())\n"
            "seen['plan'] = environment.plan_overrides()\n"
            "json.dump(seen, open(out, 'w'))"
        ),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, tmp_path / "notebooks" / "peek.ipynb")
    env = Environment.resolve(tmp_path / "r", tmp_path / "d", None, {"epochs": 1}, threads=1)
    before = dict(os.environ)
    execution.execute("peek", tmp_path / "peek-out.ipynb", {}, tmp_path, env=env)
    assert dict(os.environ) == before
    seen = json.loads((tmp_path / "seen.json").read_text())
    assert seen["JMVAE_RESULTS_DIR"] == seen["root"] == str((tmp_path / "r").resolve())
    assert seen["JMVAE_DATA_DIR"] == str((tmp_path / "d").resolve())
    assert seen["plan"] == {"epochs": 1} and seen["OMP_NUM_THREADS"] == "1"


def test_a_study_kernel_never_inherits_a_trials_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv(environment.PLAN_ENV, '{"epochs": 3}')  # left over in the shell
    env = Environment.resolve(tmp_path, tmp_path, tmp_path)
    assert environment.PLAN_ENV not in env.kernel_variables()
    assert env.celeba_dir == tmp_path.resolve() and env.data_dir == tmp_path.resolve()
    assert Environment.from_dict(json.loads(json.dumps(env.to_dict()))) == env
    # without a CelebA folder of its own, it lies inside the data folder chosen
    monkeypatch.delenv(environment.CELEBA_ENV, raising=False)
    assert Environment.resolve(None, tmp_path).celeba_dir == (tmp_path / "celeba").resolve()
    assert environment.results_root() == environment.results_root()


def _imports(module: str, path: Path) -> set[str]:
    """The package modules `module` imports anywhere in its file (function bodies included)."""
    parts = module.split(".")
    package = parts if path.name == "__init__.py" else parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            stem = ".".join(base + ([node.module] if node.module else []))
            found |= {stem} | {f"{stem}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def test_the_package_has_no_import_cycle():
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.with_suffix("").relative_to(PACKAGE.parent).parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph = {m: (_imports(m, p) & set(modules)) - {m} for m, p in modules.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m):  # depth-first search; a grey node met again closes a cycle
        state[m] = 1
        path.append(m)
        for n in sorted(graph[m]):
            assert state.get(n) != 1, "import cycle: " + " -> ".join(path[path.index(n) :] + [n])
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in sorted(modules):
        if m not in state:
            visit(m)
    assert {
        "jmvae_core.study.runs",
        "jmvae_core.study.executors",
        "jmvae_core.study.pipeline",
    } <= set(graph)
    assert "jmvae_core.study.pipeline" not in graph["jmvae_core.study.executors"]
