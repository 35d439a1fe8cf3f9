"""scripts/gpu_paper_mnist.py on a CPU in a tiny setting (the GPU study's one command).

Checked: the run folders are runs.py's (metrics and arrays equal to runs.evaluate_run's on the
same trained run), the archive holds exactly the small files, a second call skips finished
runs, the budget guard stops cleanly and says how far it got (and, with a checkpoint, the next
call resumes to exactly the uninterrupted result), the precision stages pair what they
compare and record their decisions, and the script runs where neither tqdm nor pandas can be
imported.
"""

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from jmvae_core import store
from jmvae_core.config import RunConfig, make_config
from jmvae_core.data.mnist import MNIST_MD5, md5
from jmvae_core.study import runs

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gpu_paper_mnist.py"
TINY = ["--device", "cpu", "--epochs", "2", "--n-train", "500", "--n-test", "200", "--k", "10"]
TINY += ["--n-prior", "50", "--n-judged", "20"]
SMALL_FILES = {
    "config.json", "history.csv", "TRAINED", "metrics.json", "arrays.npz", "per_image.npz",
    "probe.json", "DONE",
}  # fmt: skip
NOT_COMPARED = {"eval_time_s", "wall_time_s", "batched", "git_commit", "training_matmul"}


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("gpu_paper_mnist", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _runs_dir(out: Path) -> Path:
    return out / "results" / "paper" / "runs"


def test_selection_of_the_paper_plan(script):
    cfgs = script.plan("paper")
    assert len(script.select(cfgs, None)) == 39
    names = {script.group_name(c) for c in cfgs}
    assert len(names) == 9 and {"jmvae_kl-z64", "vae-z2"} <= names
    picked = script.select(cfgs, "vae-z2,jmvae_kl-z64")
    assert len(picked) == 16 and [script.group_name(c) for c in picked][-1] == "vae-z2"
    with pytest.raises(SystemExit, match="unknown group"):
        script.select(cfgs, "vae-z3")


def test_run_folders_archive_and_a_second_call(script, tmp_path, monkeypatch):
    """15 JMVAE-kl runs and one 2-D VAE run trained in one step, 2 epochs of 5 steps, k = 10
    on 200 test images, with the step profile; then a second call (all cached) and a third
    after one run's evaluation was undone."""
    monkeypatch.setenv(runs.PRECISION_ENV, "fp32")  # runs.py's side of the comparison
    out = tmp_path / "out"
    argv = ["--out", str(out), *TINY, "--groups", "jmvae_kl-z64,vae-z2"]
    argv += ["--estimator-precision", "fp32", "--profile-steps", "2"]
    entry = script.main(argv)
    assert entry["complete"] and entry["runs_done"] == 16 and entry["cached"] == 0
    assert entry["train"]["step_mode"] == "eager" and entry["train"]["runs"] == 16  # CPU
    assert entry["train"]["ms_per_step"] > 0 and entry["evaluate"]["runs"] == 16
    assert entry["training_matmul"] == "fp32" and "matmul_check" not in entry  # CUDA only
    profile = entry["step_profile"]
    assert profile["whole_plan"]["runs"] == 16 and set(profile["alone"]) >= {"vae-z2"}
    alone = profile["alone"]
    assert profile["whole_plan"]["max_group_runs"] == 5  # 15 JMVAE-kl runs: 3 parts of 5
    five = alone["jmvae_kl-z64 (5 runs, alpha 0.1)"]["ops"]
    assert profile["whole_plan"]["ops"] == 3 * five + alone["vae-z2"]["ops"]  # nothing more
    folders = sorted(_runs_dir(out).iterdir())
    assert len(folders) == 16
    for folder in folders:
        assert {p.name for p in folder.iterdir()} == SMALL_FILES | {"checkpoint.pt"}
        metrics = store.read_json(folder / "metrics.json")
        assert metrics["training_matmul"] == "fp32" and metrics["batched"]["batch_runs"] == 16
    with tarfile.open(out / "paper_results.tar.gz") as tar:
        names = tar.getnames()
    judge = [n for n in names if "/digit-judge-" in n]  # the judge's record, not its weights
    assert sorted(Path(n).name for n in judge) == ["DONE", "accuracy.json"]
    assert len(names) == 16 * len(SMALL_FILES) + 2 and not any(n.endswith(".pt") for n in names)
    assert all(n.startswith(("paper/runs/", "paper/digit-judge-")) for n in names)  # -> results/
    for name in ("vae-z2", "jmvae_kl-a0.1-z64-s2"):
        _same_as_runs_py(next(f for f in folders if f.name.startswith(name)), tmp_path)

    stamps = {p: p.stat().st_mtime_ns for p in _runs_dir(out).rglob("*")}
    again = script.main(argv)
    assert again["cached"] == 16 and again["complete"] and "train" not in again
    assert stamps == {p: p.stat().st_mtime_ns for p in _runs_dir(out).rglob("*")}
    assert len(store.read_json(out / "timing.json")["calls"]) == 2
    # a run trained but not evaluated (a stop during evaluation): only it is evaluated
    folder = next(f for f in folders if f.name.startswith("jmvae_kl-a1-z64-s5"))
    before = store.read_json(folder / "metrics.json")
    for name in ("metrics.json", "DONE"):
        (folder / name).unlink()
    third = script.main(argv)
    assert third["cached"] == 15 and third["evaluate"]["runs"] == 1 and third["runs_done"] == 16
    after = store.read_json(folder / "metrics.json")
    assert before["estimators"] == after["estimators"]
    assert "train" not in third  # read back, not retrained


def test_estimator_precision_is_measured_and_recorded(script, tmp_path):
    """Stage 4 on the CPU: every estimator of the group's run, bf16 against fp32."""
    out = tmp_path / "out"
    entry = script.main(["--out", str(out), *TINY, "--epochs", "1", "--groups", "jmvae_kl-z2",
                         "--precision-n-test", "40", "--profile-steps", "0"])  # fmt: skip
    check = entry["estimator_check"]
    shifts = check["shifts"]["jmvae_kl-z2"]
    assert set(shifts) == {"joint", "marginal", "conditional", "pseudo_marginal",
                           "pseudo_conditional"}  # fmt: skip
    assert all(row["n"] == 40 and row["max_abs"] >= abs(row["shift"]) for row in shifts.values())
    assert check["decision"] == entry["estimator_precision"]
    (folder,) = _runs_dir(out).iterdir()
    assert store.read_json(folder / "metrics.json")["estimator_precision"] == check["decision"]


def _same_as_runs_py(folder: Path, tmp_path: Path) -> None:
    """runs.evaluate_run on a copy of the trained run writes the script's metrics and arrays."""
    copy = store.run_dir("paper", folder.name, tmp_path / "runs_py")
    shutil.copytree(folder, copy)
    for judge in folder.parents[1].glob("digit-judge-*"):  # a cache, not trained again
        shutil.copytree(judge, copy.parents[1] / judge.name, dirs_exist_ok=True)
    for name in ("metrics.json", "arrays.npz", "DONE"):
        (copy / name).unlink()
    config = store.read_json(folder / "config.json")
    config.pop("profile")
    run = runs.Run(RunConfig.from_dict(config), "paper", copy.parents[2])
    metrics = runs.evaluate_run(run, "cpu", False)
    mine = store.read_json(folder / "metrics.json")
    assert mine.keys() - NOT_COMPARED == metrics.keys() - NOT_COMPARED
    for key in mine.keys() - NOT_COMPARED:
        assert mine[key] == metrics[key], key
    with np.load(folder / "arrays.npz") as a, np.load(copy / "arrays.npz") as b:
        assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)


class _OneCheck:
    """A time budget that allows what is asked first (going on after epoch 1), then nothing."""

    def __init__(self, seconds, reserve):
        self.calls = 0

    def allows(self, seconds):
        self.calls += 1
        return self.calls == 1

    def left(self):
        return 0.0


def test_time_budget_stop_says_how_far_and_resumes_exactly(script, tmp_path, monkeypatch):
    """A budget spent after epoch 2 of 3: a clean stop that says so, the export written,
    nothing DONE; with --checkpoint-every the next call resumes to the uninterrupted result."""
    argv = [*TINY, "--epochs", "3", "--groups", "vae-z2", "--profile-steps", "0"]
    argv += ["--estimator-precision", "fp32", "--checkpoint-every", "1"]
    script.main(["--out", str(tmp_path / "straight"), *argv])
    out = tmp_path / "paused"
    with monkeypatch.context() as patch:
        patch.setattr(script, "Budget", _OneCheck)
        stopped = script.main(["--out", str(out), *argv, "--export", str(tmp_path / "back")])
    exported = {p.name for p in (tmp_path / "back").iterdir()}
    assert exported == {"paper_results.tar.gz", "timing.json"}  # log.txt: written by the .sh
    assert stopped["train"]["epochs_done"] == 2
    assert "stopped after epoch 2 of 3" in stopped["train"]["stopped"]
    assert not stopped["complete"] and stopped["runs_done"] == 0
    assert (out / "state" / "plan.pt").exists()
    resumed = script.main(["--out", str(out), *argv])
    assert resumed["complete"] and resumed["train"]["epochs_trained"] == 1
    assert not (out / "state" / "plan.pt").exists()
    (a,), (b,) = _runs_dir(tmp_path / "straight").iterdir(), _runs_dir(out).iterdir()
    strip = lambda f: [line.rsplit(",", 2)[0] for line in (f / "history.csv").read_text().split()]  # noqa: E731
    assert strip(a) == strip(b)  # every column but time_s and batch_runs
    estimates = lambda f: store.read_json(f / "metrics.json")["estimators"]  # noqa: E731
    assert estimates(a) == estimates(b)


def test_matmul_comparison_pairs_the_seeds(script, mnist_small):
    """Stage 1's machinery on the CPU, where TF32 does not apply: each seed's fp32 and
    "tf32" runs are the same run, so the paired shift is exactly 0."""
    args = script.parse(["--out", "unused", *TINY, "--precision-epochs", "1",
                         "--precision-n-test", "30"])  # fmt: skip
    report = script.compare_matmul(mnist_small, torch.device("cpu"), "eager", args)
    assert report["per_seed"]["fp32"] == report["per_seed"]["tf32"]
    assert len(report["per_seed"]["fp32"]) == 5 and len(set(report["per_seed"]["fp32"])) == 5
    assert (report["shift"], report["sem"], report["decision"]) == (0.0, 0.0, "tf32")


def test_tf32_needs_its_shift_two_standard_errors_clear_of_the_limit(script, tmp_path):
    assert script.decide_matmul(0.02, 0.01) == "tf32"
    assert script.decide_matmul(-0.05, 0.03) == "fp32"  # |shift| < 0.1, but not by 2 SE
    assert script.recorded_matmul(tmp_path / "none.json") == "fp32"  # until measured
    store.write_json(tmp_path / "d.json", {"decision": "tf32", "shift": 0.01, "sem": 0.01})
    assert script.recorded_matmul(tmp_path / "d.json") == "tf32"


def test_checks_of_another_step_mode(script, mnist_small):
    """The self-check's comparison: equal runs agree, other seeds do not."""
    cfgs = [
        make_config("paper", alpha=alpha, seed=seed, epochs=2, hidden=64, latent_dim=16)
        for alpha, seed in ((0.1, 1), (1.0, 2))
    ]
    report = script.check_step_mode(cfgs, mnist_small, torch.device("cpu"), "eager")
    assert report["ok"] and (report["loss_rel"], report["param_abs"]) == (0.0, 0.0)
    assert report["runs"] == 1  # one run of each group
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
    argv += ["--profile-steps", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-c", BLOCK, *argv], capture_output=True, text=True, env=env, timeout=300
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "silent stand-in" in run.stderr
    entry = json.loads((out / "timing.json").read_text())["calls"][0]
    assert entry["complete"] and entry["runs_done"] == 1


def test_the_shell_command_runs_end_to_end(tmp_path):
    """bash scripts/gpu_paper_mnist.sh at tiny sizes on the CPU: archive, timing and log."""
    out = tmp_path / "out"
    argv = ["bash", str(ROOT / "scripts" / "gpu_paper_mnist.sh"), str(out), *TINY]
    argv += ["--epochs", "1", "--groups", "vae-z2", "--precision-n-test", "20"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}
    run = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert {p.name for p in out.iterdir()} >= {"paper_results.tar.gz", "timing.json", "log.txt"}
    assert "1 runs done" in (out / "log.txt").read_text()
    entry = json.loads((out / "timing.json").read_text())["calls"][0]
    assert entry["complete"] and entry["step_profile"]["whole_plan"]["runs"] == 1


def _args(script, *extra):
    return script.parse(["--out", "unused", *extra])


def test_pieces_hold_every_run_of_the_plan_once_headline_first(script):
    cfgs = script.plan("paper")
    pieces = {name: script.narrow(cfgs, **spec) for name, spec in script.PIECES.items()}
    ids = [c.run_id for runs_ in pieces.values() for c in runs_]
    assert sorted(ids) == sorted(c.run_id for c in cfgs)  # each run in exactly one piece
    first = pieces["jmvae_kl-a0.1"]
    assert [(c.model.variant, c.model.alpha, c.train.seed) for c in first] == [
        ("jmvae_kl", 0.1, seed) for seed in range(1, 6)
    ]
    assert list(script.PIECES)[:2] == ["jmvae_kl-a0.1", "vae"]


def test_run_filter_narrows_by_each_option(script):
    cfgs = script.plan("paper")
    pick = lambda *a: script.narrow(cfgs, **script.run_filter(_args(script, *a)))  # noqa: E731
    four = pick("--variant", "jmvae_kl", "--alpha", "0.1", "--latent", "64", "--seeds", "2-5")
    assert [c.train.seed for c in four] == [2, 3, 4, 5]
    assert {c.model.alpha for c in four} == {0.1} and {c.model.latent_dim for c in four} == {64}
    two = pick("--piece", "vae", "--seeds", "1,3")
    assert [(c.model.variant, c.model.latent_dim, c.train.seed) for c in two] == [
        ("vae", 64, 1), ("vae", 64, 3)
    ]  # fmt: skip
    assert pick("--piece", "vae", "--variant", "cvae") == []  # both apply
    assert len(pick("--latent", "2")) == 4 and len(pick()) == 39
    with pytest.raises(SystemExit, match="expected numbers"):
        pick("--seeds", "two")
    with pytest.raises(SystemExit, match="unknown piece"):
        pick("--piece", "vae-z3")


def test_committed_runs_are_skipped_and_only_new_ones_come_back(script, tmp_path):
    """A run DONE in the committed results folder is not made again: a second piece trains
    only the rest and its archive holds only what it made; --piece next moves on."""
    base = ["--device", "cpu", *TINY[2:], "--epochs", "1", "--profile-steps", "0"]
    base += ["--estimator-precision", "fp32", "--latent", "2"]
    first = tmp_path / "first"
    made = script.main(["--out", str(first), *base, "--variant", "vae"])
    assert made["runs_done"] == 1 and made["committed"] == []
    (vae_id,) = made["run_ids"]
    second = tmp_path / "second"
    argv = ["--out", str(second), *base, "--variant", "vae,cvae"]
    entry = script.main([*argv, "--committed", str(first / "results")])
    assert entry["committed"] == [vae_id] and entry["runs"] == 1 and entry["runs_done"] == 1
    assert [r.split("-")[0] for r in entry["run_ids"]] == ["cvae"]
    with tarfile.open(second / "paper_results.tar.gz") as tar:
        assert {Path(n).parts[2] for n in tar.getnames() if "/runs/" in n} == set(entry["run_ids"])
    without = script.main([*argv, "--committed", ""])  # nothing committed: vae made here
    assert without["committed"] == [] and without["train"]["runs"] == 1
    cfgs = script.plan("paper", epochs=1, n_train=500, n_test=200, k=10, n_prior=50, n_judged=20)
    cfgs = script.narrow(cfgs, latents={2})
    assert script.next_piece(cfgs, set(), second / "results") == "latent-2"  # 2 runs not made
    done = {c.run_id for c in cfgs}
    assert script.next_piece(cfgs, done, second / "results") is None
    nothing = script.main([*argv, "--piece", "next", "--committed", str(second / "results")])
    assert nothing["piece"] is None and nothing["run_ids"] == []  # both runs made already
    assert "train" not in nothing and nothing["complete"]


class _Boom(RuntimeError):
    pass


def test_an_exception_or_sigterm_in_training_still_brings_back_what_was_finished(
    script, tmp_path, monkeypatch
):
    """A call that raises inside training, and one that receives SIGTERM there: each still
    writes its archive (the runs DONE before), its timing entry with the error, and the
    export; nothing of the interrupted run is in the archive."""
    out, back = tmp_path / "out", tmp_path / "back"
    base = ["--out", str(out), "--export", str(back), "--device", "cpu", *TINY[2:]]
    base += ["--epochs", "1", "--profile-steps", "0", "--estimator-precision", "fp32"]
    base += ["--latent", "2"]
    script.main([*base, "--variant", "vae"])

    def boom(*args, **kwargs):
        raise _Boom("inside training")

    def term(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises here
        raise AssertionError("SIGTERM was not delivered")

    for stand_in, raised in ((boom, _Boom), (term, script.Terminated)):
        with monkeypatch.context() as patch:
            patch.setattr(script, "fit_batched", stand_in)
            with pytest.raises(raised):
                script.main([*base, "--variant", "cvae"])
        entry = store.read_json(out / "timing.json")["calls"][-1]
        assert raised.__name__ in entry["error"] and not entry["complete"]
        assert entry["runs_done"] == 1
        with tarfile.open(back / "paper_results.tar.gz") as tar:
            runs_back = {Path(n).parts[2] for n in tar.getnames() if "/runs/" in n}
        assert [r.split("-")[0] for r in runs_back] == ["vae"]  # not the cvae run
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back


def _fake_judge(results: Path) -> Path:
    """A digit judge folder as digit_judge writes it (untrained weights: only copied here)."""
    from jmvae_core.measure import digit_judge

    folder = digit_judge.judge_dir("paper", None, results)
    folder.mkdir(parents=True)
    store.save_torch(folder / digit_judge.WEIGHTS, digit_judge.DigitJudge().state_dict())
    store.write_json(folder / digit_judge.ACCURACY, {"test_accuracy": 0.5})
    store.write_text(folder / "DONE", "done\n")
    return folder


def test_the_kit_holds_gzipped_mnist_and_the_judge_and_fits_one_command(script, tmp_path):
    """gpu_kit.py prepare: the four MNIST files gzipped (unpacked again MD5-equal) and the
    paper profile's judge; the tree plus the kit stay under the 64 MiB of one command; the
    GPU script installs the kit's judge without replacing one already there."""
    kit_module = sys.modules["gpu_kit"]
    kit, results = tmp_path / "kit", tmp_path / "results"
    judge = _fake_judge(results)
    sizes = kit_module.prepare(kit, results, log=lambda *a: None)
    assert {n for n in sizes if n.startswith("mnist/")} == {f"mnist/{n}.gz" for n in MNIST_MD5}
    assert {n.split("/")[0] for n in sizes} == {"mnist", judge.name, "commit.txt"}
    assert (kit / "commit.txt").read_text().strip() == store.git_commit()
    assert sum(v for n, v in sizes.items() if n.startswith("mnist/")) < 12 * 2**20
    target = tmp_path / "data" / "mnist"
    assert sorted(kit_module.unpack(kit, target)) == sorted(MNIST_MD5)
    assert all(md5(target / n) == MNIST_MD5[n] for n in MNIST_MD5)
    assert kit_module.unpack(kit, target) == []  # present: left alone
    sent = kit_module.sent_bytes(kit)
    assert sent["tree"] > 0 and sent["total"] == sent["tree"] + sent["kit"]
    assert sent["total"] < sent["limit"] - 16 * 2**20, sent  # a margin for the results to come
    out = tmp_path / "out" / "results"
    assert script.install_judge(kit, out) == f"from the kit: {judge.name}"
    weights = out / "paper" / judge.name / "judge.pt"
    assert weights.read_bytes() == (judge / "judge.pt").read_bytes()
    store.write_json(out / "paper" / judge.name / "accuracy.json", {"test_accuracy": 0.9})
    script.install_judge(kit, out)  # one is there: not replaced
    assert store.read_json(out / "paper" / judge.name / "accuracy.json")["test_accuracy"] == 0.9
    assert script.install_judge(tmp_path / "no-kit", out).startswith("none in the kit")


def test_the_shell_command_stopped_by_sigterm_brings_back_what_it_finished(tmp_path):
    """SIGTERM to the whole command (as a time limit sends it) during a training: the script
    writes its archive (the run DONE by the earlier call, nothing of the stopped one) and its
    timing entry, and the log keeps its last lines."""
    out = tmp_path / "out"
    argv = ["bash", str(ROOT / "scripts" / "gpu_paper_mnist.sh"), str(out), *TINY]
    argv += ["--latent", "2", "--profile-steps", "0", "--estimator-precision", "fp32"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}
    first = subprocess.run([*argv, "--epochs", "1", "--variant", "vae"], capture_output=True,
                           text=True, env=env, timeout=300)  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    long = subprocess.Popen([*argv, "--epochs", "100000", "--variant", "cvae"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while "epoch 2/100000" not in (out / "log.txt").read_text():
            assert long.poll() is None and time.monotonic() < deadline, "no training seen"
            time.sleep(0.2)
        os.killpg(long.pid, signal.SIGTERM)
        assert long.wait(timeout=120) != 0
    finally:
        if long.poll() is None:
            os.killpg(long.pid, signal.SIGKILL)
    entry = json.loads((out / "timing.json").read_text())["calls"][-1]
    assert "Terminated" in entry["error"] and entry["runs_done"] == 1
    with tarfile.open(out / "paper_results.tar.gz") as tar:
        runs_back = {Path(n).parts[2] for n in tar.getnames() if "/runs/" in n}
    assert [r.split("-")[0] for r in runs_back] == ["vae"]
    log = (out / "log.txt").read_text()
    assert log.index("stopped by Terminated") < log.rindex("1 runs done in")  # after the stop


def test_smoke_mode_runs_every_stage_at_throwaway_sizes_and_times_the_steps(script, tmp_path):
    out = tmp_path / "smoke"
    argv = ["--out", str(out), "--smoke", "--device", "cpu", "--groups", "vae-z2,cvae-z2"]
    entry = script.main([*argv, "--epochs", "1", "--kit", str(tmp_path / "no-kit")])
    assert entry["smoke"] and entry["complete"] and entry["runs_done"] == 2
    assert entry["committed"] == []  # other run ids than the paper's: nothing skipped
    assert entry["evaluate"]["runs"] == 2 and entry["evaluate"]["s_per_run"] > 0  # measured
    assert set(entry["step_times"]) == {"fp32"}  # TF32 is timed on CUDA only
    times = entry["step_times"]["fp32"]
    assert set(times["alone"]) == {"vae-z2", "cvae-z2"} and times["whole_plan"]["ms"] > 0
    assert not (out / script.ARCHIVE).exists()  # never mistaken for the paper's runs
    with tarfile.open(out / script.SMOKE_ARCHIVE) as tar:
        configs = [n for n in tar.getnames() if n.endswith("config.json")]
    assert len(configs) == 2
    cfg = store.read_json(next(_runs_dir(out).glob("*/config.json")))
    assert (cfg["train"]["epochs"], cfg["train"]["n_train"], cfg["eval"]["k"]) == (1, 1000, 10)


def test_a_copy_without_git_records_the_kits_commit(script, tmp_path, monkeypatch):
    """On a machine that got the tree without .git, every file records the commit the kit was
    prepared at (or --git-commit), not 'unknown'; git, where it answers, still wins."""
    monkeypatch.delenv("JMVAE_GIT_COMMIT", raising=False)
    (tmp_path / "commit.txt").write_text("abc123\n")
    args = script.parse(["--out", str(tmp_path / "o"), "--kit", str(tmp_path)])
    assert script.record_commit(args) == "abc123" and os.environ["JMVAE_GIT_COMMIT"] == "abc123"
    monkeypatch.setattr(store, "REPO_ROOT", tmp_path)  # not a git checkout
    assert store.git_commit.__wrapped__() == "abc123"
    args = script.parse(
        ["--out", str(tmp_path / "o"), "--kit", str(tmp_path), "--git-commit", "def"]
    )
    assert script.record_commit(args) == "def" and store.git_commit.__wrapped__() == "def"
    monkeypatch.delenv("JMVAE_GIT_COMMIT")
    assert store.git_commit.__wrapped__() == "unknown"
    monkeypatch.undo()
    if (store.REPO_ROOT / ".git").exists():
        assert store.git_commit.__wrapped__() not in {"def", "unknown"}
