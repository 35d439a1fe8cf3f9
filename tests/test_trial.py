"""A trial, `reproduce --epochs 1`: its own runs, results folder and book, notebooks told the
override, and the repository's notebooks untouched (its own file, so that it runs beside the
smoke reproduction of tests/test_pipeline.py)."""

import os
from pathlib import Path

import nbformat

from jmvae_core import executors, pipeline, results
from jmvae_core.config import plan
from jmvae_core.runs import run_with_notebooks

ROOT = Path(__file__).resolve().parent.parent


def test_a_trial_is_consistent_and_leaves_the_committed_notebooks_alone(tmp_path, monkeypatch):
    """`reproduce --epochs 1`: the trial's runs, results folder and book, notebooks that find
    those runs (told the override), and the repository's notebooks untouched."""
    monkeypatch.setenv(results.RESULTS_ENV, str(tmp_path / "results"))
    committed = {p: p.read_bytes() for p in (ROOT / "notebooks").glob("*.ipynb")}
    environ = dict(os.environ)
    seen = []

    def watched(cfg, profile, device, cwd, env):  # each run, as the executor starts it
        seen.append((dict(os.environ) == environ, env))
        return run_with_notebooks(cfg, profile, device, cwd, env)

    monkeypatch.setattr(executors, "run_with_notebooks", watched)
    summary = pipeline.reproduce(
        "smoke", device="cpu", overrides={"epochs": 1}, build=False, progress=False
    )
    assert dict(os.environ) == environ
    # the trial's folders and overrides reach each run as a passed environment, never through
    # this process's os.environ, not even while the runs execute
    assert len(seen) == len(plan("smoke")) and all(unchanged for unchanged, _ in seen)
    env = seen[0][1]
    assert env.overrides == {"epochs": 1}
    assert env.kernel_variables()[results.PLAN_ENV] == '{"epochs": 1}'
    assert env.results_dir == (tmp_path / "results" / "trials" / "mnist-epochs1" / "results")
    trial = tmp_path / "results" / "trials" / "mnist-epochs1"
    assert not summary.failed and len(summary.ran) == len(plan("smoke"))
    assert summary.notebooks == trial / "book" / "notebooks"
    for cfg in plan("smoke", epochs=1):
        folder = results.run_dir("smoke", cfg.run_id, trial / "results")
        assert results.check_run(folder) == "done"
    for name in pipeline.RESULT_NOTEBOOKS:
        nb = nbformat.read(summary.notebooks / f"{name}.ipynb", as_version=4)
        assert not nb.metadata["papermill"].get("exception"), name
    assert committed == {p: p.read_bytes() for p in (ROOT / "notebooks").glob("*.ipynb")}
