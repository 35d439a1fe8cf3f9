"""scripts/gpu_paper_mnist.py on a CPU in a tiny setting (the GPU study's one command).

Checked: the run folders are runs.py's (metrics and arrays equal to runs.evaluate_run's on the
same trained run), the archive holds exactly the small files, a second call skips finished
groups, a time-budget stop leaves a checkpoint from which the next call resumes to exactly the
uninterrupted result, and the script runs where neither tqdm nor pandas can be imported.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from jmvae_core import results, runs
from jmvae_core.config import RunConfig, make_config

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu_paper_mnist.py"
TINY = ["--device", "cpu", "--epochs", "2", "--n-train", "500", "--n-test", "200", "--k", "10"]
TINY += ["--n-prior", "50"]
SMALL_FILES = {"config.json", "history.csv", "TRAINED", "metrics.json", "arrays.npz", "DONE"}
NOT_COMPARED = {"eval_time_s", "wall_time_s", "batched", "git_commit"}


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("gpu_paper_mnist", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _runs_dir(out: Path) -> Path:
    return out / "results" / "paper" / "runs"


def test_groups_of_the_paper_plan(script):
    groups = script.group_runs(script.plan("paper"), None)
    sizes = {name: len(cfgs) for name, cfgs in groups.items()}
    assert sizes["jmvae_kl-z64"] == 15 and sizes["vae-z64"] == 5 and sizes["vae-z2"] == 1
    assert sum(sizes.values()) == 39 and len(sizes) == 9
    assert list(script.group_runs(script.plan("paper"), "vae-z2,cmma-z64")) == [
        "vae-z2",
        "cmma-z64",
    ]
    parts = script.group_runs(script.plan("paper"), "jmvae_kl-z64,vae-z64.2", max_runs=4)
    assert {name: len(cfgs) for name, cfgs in parts.items()} == {
        "jmvae_kl-z64.1": 4,
        "jmvae_kl-z64.2": 4,
        "jmvae_kl-z64.3": 4,
        "jmvae_kl-z64.4": 3,
        "vae-z64.2": 1,
    }
    with pytest.raises(SystemExit, match="unknown group"):
        script.group_runs(script.plan("paper"), "vae-z3")


def test_run_folders_archive_and_a_second_call(script, tmp_path):
    """15 JMVAE-kl runs and one 2-D VAE run, 2 epochs of 5 steps, k = 10 on 200 test images;
    then a second call (all cached) and a third after one run's evaluation was undone."""
    out = tmp_path / "out"
    argv = ["--out", str(out), *TINY, "--groups", "jmvae_kl-z64,vae-z2"]
    entry = script.main(argv)
    assert entry["complete"] and entry["runs_done"] == 16
    for report in entry["groups"].values():
        assert report["status"] == "done" and report["step_mode"] == "eager"  # graph -> CPU
        assert report["ms_per_epoch_per_run"] > 0 and report["eval_seconds"] >= 0
    folders = sorted(_runs_dir(out).iterdir())
    assert len(folders) == 16
    for folder in folders:
        assert {p.name for p in folder.iterdir()} == SMALL_FILES | {"checkpoint.pt"}
    assert not any((out / "work" / "checkpoints").iterdir())  # group states deleted
    with tarfile.open(out / "paper_results.tar.gz") as tar:
        names = tar.getnames()
    assert len(names) == 16 * len(SMALL_FILES) and not any(n.endswith(".pt") for n in names)
    assert all(n.startswith("paper/runs/") for n in names)  # extracts into results/
    for name in ("vae-z2", "jmvae_kl-a0.1-z64-s2"):
        _same_as_runs_py(next(f for f in folders if f.name.startswith(name)), tmp_path)

    stamps = {p: p.stat().st_mtime_ns for p in _runs_dir(out).rglob("*")}
    again = script.main(argv)
    assert {g["status"] for g in again["groups"].values()} == {"cached"} and again["complete"]
    assert stamps == {p: p.stat().st_mtime_ns for p in _runs_dir(out).rglob("*")}
    assert len(results.read_json(out / "timing.json")["calls"]) == 2
    # a run trained but not evaluated (a stop during evaluation): only it is evaluated
    folder = next(f for f in folders if f.name.startswith("jmvae_kl-a1-z64-s5"))
    before = results.read_json(folder / "metrics.json")
    for name in ("metrics.json", "DONE"):
        (folder / name).unlink()
    third = script.main(argv)
    assert third["groups"]["jmvae_kl-z64"]["status"] == "done" and third["runs_done"] == 16
    after = results.read_json(folder / "metrics.json")
    assert before["estimators"] == after["estimators"]
    assert "train_seconds" not in third["groups"]["jmvae_kl-z64"]  # read back, not retrained


def _same_as_runs_py(folder: Path, tmp_path: Path) -> None:
    """runs.evaluate_run on a copy of the trained run writes the script's metrics and arrays."""
    copy = results.run_dir("paper", folder.name, tmp_path / "runs_py")
    shutil.copytree(folder, copy)
    for name in ("metrics.json", "arrays.npz", "DONE"):
        (copy / name).unlink()
    config = results.read_json(folder / "config.json")
    config.pop("profile")
    metrics = runs.evaluate_run(RunConfig.from_dict(config), "paper", "cpu", copy.parents[2], False)
    mine = results.read_json(folder / "metrics.json")
    assert mine.keys() - NOT_COMPARED == metrics.keys() - NOT_COMPARED
    for key in mine.keys() - NOT_COMPARED:
        assert mine[key] == metrics[key], key
    with np.load(folder / "arrays.npz") as a, np.load(copy / "arrays.npz") as b:
        assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)


class _OneStart:
    """A time budget that allows the group to start and is spent after its first epoch."""

    def __init__(self, seconds, reserve):
        self.calls = 0

    def allows(self, seconds):
        self.calls += 1
        return self.calls == 1


def test_time_budget_stop_resumes_to_the_uninterrupted_result(script, tmp_path, monkeypatch):
    argv = [*TINY, "--epochs", "3", "--groups", "vae-z2", "--checkpoint-every", "5"]
    script.main(["--out", str(tmp_path / "straight"), *argv])
    out = tmp_path / "paused"
    with monkeypatch.context() as patch:
        patch.setattr(script, "Budget", _OneStart)
        stopped = script.main(["--out", str(out), *argv, "--export", str(tmp_path / "back")])
    exported = {p.name for p in (tmp_path / "back").iterdir()}
    assert exported == {"paper_results.tar.gz", "timing.json"}  # log.txt: written by the .sh
    report = stopped["groups"]["vae-z2"]
    assert report["status"] == "stopped" and report["epochs_done"] == 1
    assert not stopped["complete"] and stopped["runs_done"] == 0
    assert (out / "work" / "checkpoints" / "vae-z2" / "group.pt").exists()
    resumed = script.main(["--out", str(out), *argv])
    assert resumed["complete"] and resumed["groups"]["vae-z2"]["epochs_trained"] == 2
    (a,), (b,) = _runs_dir(tmp_path / "straight").iterdir(), _runs_dir(out).iterdir()
    strip = lambda f: [line.rsplit(",", 2)[0] for line in (f / "history.csv").read_text().split()]  # noqa: E731
    assert strip(a) == strip(b)  # every column but time_s and batch_runs
    estimates = lambda f: results.read_json(f / "metrics.json")["estimators"]  # noqa: E731
    assert estimates(a) == estimates(b)


def test_checks_of_another_step_mode(script, mnist_small):
    """The self-check's comparison: equal runs agree, other seeds do not."""
    cfgs = [
        make_config("paper", alpha=alpha, seed=seed, epochs=2, hidden=64, latent_dim=16)
        for alpha, seed in ((0.1, 1), (1.0, 2))
    ]
    report = script.check_step_mode(cfgs, mnist_small, torch.device("cpu"), "eager")
    assert report["ok"] and (report["loss_rel"], report["param_abs"]) == (0.0, 0.0)
    one = script.fit_batched(cfgs[:1], mnist_small, "cpu", False, epochs=1, draws="epoch")
    other = script.fit_batched(cfgs[1:], mnist_small, "cpu", False, epochs=1, draws="epoch")
    assert min(script.differences(one, other)) > 100 * script.CHECK_TOLERANCE


# None in sys.modules: `import tqdm` and `import pandas` fail as for a missing package
BLOCK = """
import sys
sys.modules["tqdm"] = sys.modules["pandas"] = None
__file__ = sys.argv.pop(1)
sys.argv = [__file__, *sys.argv[1:]]
exec(compile(open(__file__).read(), __file__, "exec"))
"""


def test_script_runs_without_tqdm_and_pandas(tmp_path):
    out = tmp_path / "out"
    argv = [str(SCRIPT), "--out", str(out), *TINY, "--epochs", "1", "--groups", "vae-z2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", BLOCK, *argv], capture_output=True, text=True, env=env, timeout=300
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "silent stand-in" in run.stderr
    entry = json.loads((out / "timing.json").read_text())["calls"][0]
    assert entry["complete"] and entry["runs_done"] == 1
