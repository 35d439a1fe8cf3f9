"""The main command on an up-to-date checkout: every run cached, no notebook re-executed, the
checkout left as it was, and only the study's own lines in what a user reads."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _git_status() -> str:
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    return done.stdout


def test_reproduce_on_an_up_to_date_checkout_rewrites_nothing():
    before = _git_status()
    done = subprocess.run(
        [sys.executable, "-m", "jmvae_core.study.cli", "reproduce", "--profile", "quick",
         "--device", "cpu", "--no-build"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ran 0 run(s)" in done.stdout and "0 failed" in done.stdout, done.stdout
    assert _git_status() == before
    noise = [line for line in done.stderr.splitlines() if "Kernel is running over TCP" in line]
    assert not noise and "Traceback" not in done.stderr
