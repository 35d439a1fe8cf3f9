"""A long run as `jmvae run --profile paper` makes it: per-epoch progress lines with an ETA, a
thread count, a results folder outside the repository, a bitwise resume after kill -9, and
`jmvae collect` bringing its small files (never the checkpoint) into the study's results."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from jmvae_core import data as datasets
from jmvae_core import store
from jmvae_core.config import config_from_params
from jmvae_core.study import cli
from jmvae_core.training.fit import CHECKPOINT, epoch_line, fit

ROOT = Path(__file__).resolve().parent.parent
# the paper profile's schedule (500 epochs, 200-epoch warm-up of the KL and the alpha terms),
# cut to four epochs of 2,000 images so that a kill lands between two checkpoints (and a small
# evaluation)
PAPER_FEW = {"epochs": 4, "n_train": 2000, "n_test": 20, "k": 5, "n_prior": 10, "n_judged": 10}


def _argv(results_dir: Path, variant: str = "jmvae_kl") -> list[str]:
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in PAPER_FEW.items()]
    return ["run", "--variant", variant, "--alpha", "0.1", "--profile", "paper", *flags,
            "--device", "cpu", "--threads", "1", "--results-dir", str(results_dir)]  # fmt: skip


def test_a_run_killed_with_sigkill_resumes_bitwise_in_another_process(tmp_path):
    cfg = config_from_params("paper", variant="jmvae_kl", alpha=0.1, **PAPER_FEW)
    assert (cfg.train.warmup_epochs, cfg.train.warmup_alpha, cfg.eval.k) == (200, True, 5)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "jmvae_core.study.cli", *_argv(tmp_path / "away")]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            cwd=ROOT, env=env)  # fmt: skip
    lines = []
    for line in proc.stderr:  # one line per epoch: the log of a long run can be tailed
        lines.append(line)
        if "epoch 1/4" in line:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, lines
    assert "checkpoint saved" in lines[-1] and "ETA" in lines[-1]
    folder = store.run_dir("paper", cfg.run_id, tmp_path / "away")
    killed_at = len(store.load_torch(folder / CHECKPOINT)["history"])
    assert 1 <= killed_at < 4 and store.check_run(folder) == "new"

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the killed process: the same arithmetic
    try:
        data = datasets.load(cfg, torch.device("cpu"))
        resumed, resumed_rows = fit(cfg, data, folder, device="cpu", progress=False)
        straight, straight_rows = fit(cfg, data, None, device="cpu", progress=False)
    finally:
        torch.set_num_threads(threads)
    for (name, a), b in zip(
        straight.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    drop = lambda rows: [{k: v for k, v in r.items() if k != "time_s"} for r in rows]  # noqa: E731
    assert drop(resumed_rows) == drop(straight_rows)
    assert [r["beta"] for r in straight_rows] == [0.005, 0.01, 0.015, 0.02]  # the warm-up


def test_a_finished_run_is_collected_without_its_checkpoint(tmp_path, capsys):
    # the VAE: a finished paper-profile run without the digit judge's training (15 s here)
    assert cli.main(_argv(tmp_path / "away", "vae")) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    away = store.run_dir("paper", run_id, tmp_path / "away")
    trained = store.read_json(away / store.TRAINED)
    assert trained["threads"] == 1 and trained["git_commit"]  # recorded, not in the id
    unfinished = store.run_dir("paper", "vae-z64-s1-0123456789", tmp_path / "away")
    unfinished.mkdir(parents=True)
    (unfinished / CHECKPOINT).write_bytes(b"weights")

    argv = ["collect", str(tmp_path / "away"), "--results-dir", str(tmp_path / "study")]
    assert cli.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {"copied": [run_id], "present": [], "unfinished": [unfinished.name]}
    here = store.run_dir("paper", run_id, tmp_path / "study")
    expected = {p.name for p in away.iterdir()} - {CHECKPOINT}
    assert {p.name for p in here.iterdir()} == expected and store.finished(here)
    for name in expected:
        assert (here / name).read_bytes() == (away / name).read_bytes(), name
    assert not store.run_dir("paper", unfinished.name, tmp_path / "study").exists()

    assert cli.main(argv) == 0  # a second call finds it there and copies nothing
    assert json.loads(capsys.readouterr().out)["present"] == [run_id]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--variant", "vae", "--threads", "0"], "--threads 0 must be a positive"),
        (["collect", "nowhere-at-all"], "nowhere-at-all"),
        (["collect", ".", "--profile", "fast"], "profile='fast' is unknown"),
    ],
)
def test_bad_long_run_settings_exit_2_with_one_message(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_progress_line_shows_the_epoch_loss_pace_and_time_left():
    row = {"epoch": 100, "loss": 91.234, "time_s": 16.04}
    line = epoch_line("jmvae_kl-a0.1-z64-s1-x", row, 500, 15.5, True)
    assert line == (
        "jmvae_kl-a0.1-z64-s1-x: epoch 100/500 loss 91.23, 16.0 s (mean 15.5 s), "
        "ETA 1h43m, checkpoint saved"
    )
    assert epoch_line("r", {**row, "epoch": 498}, 500, 15.5, False).endswith("ETA 0m31s")
