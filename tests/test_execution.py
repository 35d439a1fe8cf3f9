"""Kept kernels (jmvae_core.study.execution.Kernels): notebooks executed one after another in
one kernel see what a fresh kernel shows them (no earlier names, counts from 1, warnings
shown again, no open figure, subnormal floats kept), one kernel serves them, and a dead kernel
is replaced."""

import json
import os
import threading

import nbformat
import pytest

from jmvae_core.study import execution


def _notebook(folder, name, *sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("out = None", metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    (folder / "notebooks").mkdir(exist_ok=True)
    nbformat.write(nb, folder / "notebooks" / f"{name}.ipynb")


# what a notebook can see of the notebooks before it in the same kernel; the warning comes from
# one line of an imported module, as a library's would (shown once per kernel unless cleared)
PEEK = (
    "import json, os, torch, warner\n"
    "import matplotlib\n"
    "matplotlib.use('agg')\n"
    "import matplotlib.pyplot as plt\n"
    "warner.warn()\n"
    "seen = {'left': 'left_behind' in dir(), 'pid': os.getpid(),\n"
    "        'figures': len(plt.get_fignums()), 'count': get_ipython().execution_count,\n"
    "        'subnormals': float(torch.tensor([1e-39]) * 1) > 0}\n"
    "left_behind = plt.figure()\n"
    "torch.set_flush_denormal(True)  # as fit does on the CPU\n"
    "json.dump(seen, open(out, 'w'))"
)


def _outputs(path):
    """-> (each code cell's execution count, whether the warning was shown)."""
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    shown = "once per location" in json.dumps([c.get("outputs", []) for c in cells])
    return [c.get("execution_count") for c in cells], shown


def test_notebooks_in_a_kept_kernel_see_what_a_fresh_kernel_shows_them(tmp_path):
    _notebook(tmp_path, "peek", PEEK)
    (tmp_path / "warner.py").write_text(
        "import warnings\n\ndef warn():\n    warnings.warn('once per location', UserWarning)\n"
    )
    seen, counts = [], []
    with execution.Kernels() as kernels:
        for i in range(3):
            out = tmp_path / f"seen{i}.json"
            execution.execute(
                "peek", tmp_path / f"out{i}.ipynb", {"out": str(out)}, tmp_path, kernels=kernels
            )
            seen.append(json.loads(out.read_text()))
            counts.append(_outputs(tmp_path / f"out{i}.ipynb"))
        (km,) = kernels._managers.values()
        assert km.handed_out == []  # every client papermill opened is closed
    fresh = tmp_path / "fresh.json"
    execution.execute("peek", tmp_path / "fresh.ipynb", {"out": str(fresh)}, tmp_path)
    fresh_seen = json.loads(fresh.read_text())
    assert len({s["pid"] for s in seen}) == 1 and fresh_seen["pid"] != seen[0]["pid"]
    assert fresh_seen["figures"] == 0 and not fresh_seen["left"] and fresh_seen["subnormals"]
    assert all({**s, "pid": 0} == {**fresh_seen, "pid": 0} for s in seen), seen
    assert _outputs(tmp_path / "fresh.ipynb")[1]  # the warning shows in a fresh kernel
    assert counts == [_outputs(tmp_path / "fresh.ipynb")] * 3  # counts 1, 2, ...; warned


def test_a_kept_kernel_that_died_is_replaced_and_a_failed_notebook_keeps_it(tmp_path):
    _notebook(tmp_path, "pid", "import json, os\njson.dump(os.getpid(), open(out, 'w'))")
    _notebook(tmp_path, "fail", "raise ValueError('in a cell')")
    _notebook(tmp_path, "die", "import os\nos._exit(1)")
    pids = []

    def pid(i):
        out = tmp_path / f"pid{i}.json"
        execution.execute("pid", tmp_path / "p.ipynb", {"out": str(out)}, tmp_path, kernels=kernels)
        pids.append(json.loads(out.read_text()))

    with execution.Kernels() as kernels:
        pid(0)
        with pytest.raises(execution.NotebookFailed, match="ValueError: in a cell"):
            execution.execute("fail", tmp_path / "f.ipynb", {}, tmp_path, kernels=kernels)
        pid(1)
        with pytest.raises(Exception):  # noqa: B017 - papermill names a dead kernel its own way
            execution.execute("die", tmp_path / "d.ipynb", {}, tmp_path, kernels=kernels)
        pid(2)
    assert pids[0] == pids[1] != pids[2]
    for p in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(p, 0)  # every kernel shut down on leaving


def test_kept_kernels_belong_to_one_thread(tmp_path):
    kernels, errors = execution.Kernels(), []

    def elsewhere():
        try:
            kernels.manager({}, tmp_path)
        except RuntimeError as e:
            errors.append(str(e))

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert errors and "another thread" in errors[0]
