"""Run folders: atomic writes, DONE markers, and what result notebooks may read."""

import os

import pytest

from jmvae_core import store
from jmvae_core.config import make_config, plan
from jmvae_core.pages import results


def _finish(root, cfg, profile="smoke", done=True):
    folder = store.run_dir(profile, cfg.run_id, root)
    metrics = {"run_id": cfg.run_id, "variant": cfg.model.variant, "estimators": {}}
    store.write_json(folder / "metrics.json", metrics)  # the keys every reader relies on
    if done:
        store.mark_done(folder)
    return folder


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    store.write_json(tmp_path / "a" / "m.json", {"x": 1})
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["m.json"]
    assert store.read_json(tmp_path / "a" / "m.json") == {"x": 1}


def test_load_runs_names_the_missing_runs_and_the_command(tmp_path):
    cfgs = plan("smoke")
    for cfg in cfgs[:-2]:
        _finish(tmp_path, cfg)
    _finish(tmp_path, cfgs[-1], done=False)  # a crashed run: never read
    with pytest.raises(FileNotFoundError, match=r"2 run\(s\) of the smoke profile") as info:
        results.load_runs("smoke", tmp_path)
    assert "jmvae reproduce --profile smoke" in str(info.value)
    assert cfgs[-1].run_id in str(info.value)


def test_load_runs_reads_only_the_plan_unless_asked(tmp_path):
    for cfg in plan("smoke"):
        _finish(tmp_path, cfg)
    extra = make_config("smoke", variant="vae", epochs=7)
    _finish(tmp_path, extra)
    planned = results.load_runs("smoke", tmp_path)
    assert len(planned) == len(plan("smoke"))
    assert extra.run_id not in {r["run_id"] for r in planned}
    every = results.load_runs("smoke", tmp_path, planned_only=False)
    assert extra.run_id in {r["run_id"] for r in every}


def _dead_pid() -> int:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def test_a_lock_of_a_killed_process_is_taken_over(tmp_path):
    import socket

    lock = tmp_path / store.LOCK
    lock.write_text(f"{socket.gethostname()} {_dead_pid()}\n")
    with store.run_lock(tmp_path, poll_s=0.01):
        assert lock.read_text().split()[1] == str(os.getpid())
    assert not lock.exists() and [p.name for p in tmp_path.iterdir()] == []


def test_a_held_lock_makes_another_process_wait_until_it_is_released(tmp_path):
    import socket
    import threading

    lock = tmp_path / store.LOCK
    lock.write_text(f"{socket.gethostname()} {os.getpid()}\n")  # held by a live process
    told, got = [], threading.Event()

    def second():
        with store.run_lock(tmp_path, poll_s=0.01, on_wait=told.append):
            got.set()

    thread = threading.Thread(target=second)
    thread.start()
    assert not got.wait(0.3) and told == [lock]  # waiting, and said so once
    lock.unlink()  # the holder finishes
    assert got.wait(5)
    thread.join()
    assert not lock.exists()
