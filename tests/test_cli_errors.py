"""Failures a user can cause end in one message on stderr, the right exit code and no
traceback, with nothing lost or left behind (the CLI's error boundary, cli.main).

Classes covered here: OS errors on a given folder (exit 2, the path named), a full disk while
a checkpoint is written (exit 1; no temporary file, the last good checkpoint intact), Ctrl-C
(exit 130), an unreachable Dask scheduler (exit 2, the address named, within seconds), and a
clean stdout (messages such as "resuming" go to stderr); --debug shows the traceback instead.
"""

import errno
import json
import os
import time

import pytest
import torch

from jmvae_core import store
from jmvae_core.config import make_config
from jmvae_core.pages import results
from jmvae_core.study import cli, runs
from jmvae_core.training.fit import fit

TINY = ["--profile", "smoke", "--epochs", "2", "--n-train", "200", "--n-test", "20"]
TINY += ["--k", "5", "--n-prior", "10", "--device", "cpu"]


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def _no_traceback(err: str) -> None:
    """No traceback, and one message line (progress bars aside, which also go to stderr)."""
    assert "Traceback" not in err, err
    messages = [line.split("\r")[-1] for line in err.splitlines() if "jmvae: " in line]
    assert len(messages) == 1 and messages[0].startswith("jmvae: "), err


def test_a_results_folder_under_a_file_is_named_and_exit_2(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code = cli.main(["run", "--variant", "vae", *TINY, "--results-dir", str(blocker / "res")])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    _no_traceback(err)
    assert str(blocker) in err and "--results-dir" in err
    assert _files(tmp_path) == ["a-file"] and blocker.read_text() == "not a folder"


def test_debug_shows_the_traceback_instead(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    argv = ["run", "--variant", "vae", *TINY, "--results-dir", str(blocker / "res")]
    with pytest.raises(NotADirectoryError):
        cli.main(["--debug", *argv])
    with pytest.raises(NotADirectoryError):
        cli.main([*argv, "--debug"])  # after the command as well


def test_a_full_disk_keeps_the_last_checkpoint_and_leaves_no_temporary_file(
    tmp_path, capsys, monkeypatch
):
    """The second epoch's checkpoint cannot be written (ENOSPC at fsync)."""
    real_fsync, seen = os.fsync, []

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if name.endswith("-checkpoint.pt"):
            seen.append(name)
            if len(seen) == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    code = cli.main(["run", "--variant", "vae", *TINY, "--results-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    _no_traceback(err)
    (folder,) = (tmp_path / "smoke" / "runs").iterdir()
    assert "no space left writing" in err and str(folder / "checkpoint.pt") in err
    assert not [p for p in folder.iterdir() if p.name.startswith("tmp-")]
    state = store.load_torch(folder / "checkpoint.pt")
    assert len(state["history"]) == 1  # epoch 1's checkpoint, intact
    monkeypatch.setattr(os, "fsync", real_fsync)  # space again: the same command goes on
    assert cli.main(["run", "--variant", "vae", *TINY, "--results-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "resuming from the checkpoint after epoch 1" in err
    assert json.loads(out)["run_id"] == folder.name  # stdout: the JSON result only


def test_ctrl_c_exits_130_with_one_message(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "run_one", interrupted)
    code = cli.main(["run", "--variant", "vae", *TINY, "--results-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 130 and out == ""
    _no_traceback(err)
    assert "interrupted" in err


def test_an_unreachable_scheduler_is_named_and_exit_2(tmp_path, capsys):
    pytest.importorskip("distributed")
    address = "tcp://127.0.0.1:9"  # the discard port: nothing listens
    start = time.perf_counter()
    code = cli.main(["reproduce", "--profile", "smoke", "--executor", "dask", "--scheduler",
                     address, "--no-build", "--results-dir", str(tmp_path / "res"),
                     "--book-dir", str(tmp_path / "book")])  # fmt: skip
    seconds = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and seconds < 30
    _no_traceback(err)
    assert address in err and "--scheduler" in err
    assert not (tmp_path / "res").exists() or not any((tmp_path / "res").rglob("DONE"))


def test_the_resume_message_goes_to_stderr(tmp_path, capsys, mnist_small):
    cfg = make_config("smoke", variant="vae", epochs=2, n_train=200)
    data = mnist_small

    class Stop(Exception):
        pass

    def stop_after_one(row):
        raise Stop

    with pytest.raises(Stop):
        fit(cfg, data, tmp_path, progress=True, on_epoch_end=stop_after_one)
    capsys.readouterr()
    model, history = fit(cfg, data, tmp_path, progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "resuming from the checkpoint after epoch 1" in err
    assert len(history) == 2 and isinstance(model, torch.nn.Module)


@pytest.fixture
def finished(tmp_path, capsys):
    """A finished tiny VAE run in tmp_path: (folder, its metrics printed by `jmvae run`)."""
    assert cli.main(["run", "--variant", "vae", *TINY, "--results-dir", str(tmp_path)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    (folder,) = (tmp_path / "smoke" / "runs").iterdir()
    return folder, metrics


def _run_again(tmp_path, capsys):
    code = cli.main(["run", "--variant", "vae", *TINY, "--results-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err
    return json.loads(out), err


@pytest.mark.parametrize("damage", ["truncated", "garbage", "another run's"])
def test_a_damaged_metrics_file_behind_done_is_named_and_evaluated_again(
    finished, tmp_path, capsys, damage
):
    folder, metrics = finished
    text = (folder / "metrics.json").read_text()
    bad = {"truncated": text[: len(text) // 2], "garbage": "\x00\x01 not json",
           "another run's": json.dumps({**metrics, "run_id": "vae-z2-s9-0000000000"})}  # fmt: skip
    (folder / "metrics.json").write_text(bad[damage])
    again, err = _run_again(tmp_path, capsys)
    assert str(folder / "metrics.json") in err and "evaluated again" in err
    assert again["estimators"] == metrics["estimators"]  # the same run, evaluated again
    assert store.check_run(folder) == "done"


@pytest.mark.parametrize(
    "damage",
    ["checkpoint gone", "history empty", "history cut", "checkpoint truncated", "no weights"],
)
def test_a_damaged_trained_run_is_named_and_trained_again(finished, tmp_path, capsys, damage):
    folder, metrics = finished
    (folder / "DONE").unlink()  # trained, not evaluated: as after a stop during evaluation
    named = "history.csv" if damage.startswith("history") else "checkpoint.pt"
    if damage == "checkpoint gone":
        (folder / "checkpoint.pt").unlink()
    elif damage == "history empty":
        (folder / "history.csv").write_text("")
    elif damage == "history cut":
        text = (folder / "history.csv").read_text()
        (folder / "history.csv").write_text(text[: text.index("\n") + 12])  # inside row 1
    elif damage == "no weights":
        torch.save({"history": []}, folder / "checkpoint.pt")
    else:
        data = (folder / "checkpoint.pt").read_bytes()
        (folder / "checkpoint.pt").write_bytes(data[: len(data) // 3])
    again, err = _run_again(tmp_path, capsys)
    assert str(folder / named) in err and "trained again" in err
    assert again["estimators"] == metrics["estimators"]  # retrained from its seed: the same
    assert not [p for p in folder.iterdir() if p.name.startswith("tmp-")]


def test_a_reader_names_a_damaged_run_instead_of_crashing(finished, tmp_path, capsys):
    folder, _ = finished
    (folder / "metrics.json").write_text("{")
    with pytest.raises(FileNotFoundError, match="jmvae reproduce --profile smoke"):
        results.load_runs("smoke", tmp_path, planned_only=False)
    assert str(folder / "metrics.json") in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "named"),
    [(["--n-test", "20000"], "n_test=20000"), (["--n-train", "70000"], "n_train=70000"),
     (["--device", "gpu"], "--device 'gpu'")],
)  # fmt: skip
def test_settings_that_cannot_meet_the_data_or_device_stop_before_any_file(
    tmp_path, capsys, flags, named
):
    code = cli.main(["run", "--variant", "vae", *TINY, *flags, "--results-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    _no_traceback(err)
    assert named in err and _files(tmp_path) == []  # nothing written for the run


def test_a_device_this_machine_lacks_stops_run_and_reproduce_before_any_work(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for argv in (["run", "--variant", "vae", *TINY],
                 ["reproduce", "--profile", "smoke", "--no-build", "--device", "cuda",
                  "--book-dir", str(tmp_path / "book")]):  # fmt: skip
        argv = [*argv, "--device", "cuda", "--results-dir", str(tmp_path / "res")]
        start = time.perf_counter()
        code = cli.main(argv)
        out, err = capsys.readouterr()
        assert code == 2 and out == "" and time.perf_counter() - start < 10
        _no_traceback(err)
        assert "--device cuda" in err and not (tmp_path / "res").exists()


def test_a_batch_larger_than_the_training_images_is_refused():
    from jmvae_core.config import ConfigError
    from jmvae_core.data.mnist import check_mnist_sizes

    check_mnist_sizes(make_config("smoke", batch_size=100, n_train=100))  # fits
    with pytest.raises(ConfigError, match=r"batch_size=60001 is larger than the 60000"):
        check_mnist_sizes(make_config("smoke", batch_size=60001, n_train=None))
