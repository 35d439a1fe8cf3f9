"""The writing side of the results: run folders, the names of a run's files, atomic writes,
markers (checked and repaired), the run lock, collection and provenance (the reading side:
jmvae_core.pages.results)."""

from __future__ import annotations

import contextlib
import csv
import errno
import functools
import io
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from jmvae_core.config import ConfigError, RunConfig
from jmvae_core.environment import COMMIT_ENV, REPO_ROOT, results_root


def runs_dir(profile: str, root: Path | None = None) -> Path:
    """<root>/<profile>/runs, root defaulting to this process's results folder."""
    return Path(root if root is not None else results_root()) / profile / "runs"


def run_dir(profile: str, run_id: str, root: Path | None = None) -> Path:
    return runs_dir(profile, root) / run_id


@dataclass(frozen=True)
class Run:
    """One run of the study: its config, the profile it belongs to and the results folder it
    lives under (None: this process's, $JMVAE_RESULTS_DIR or results/). It knows its folder
    and its state; the steps that make it (jmvae_core.study.runs) take it whole."""

    cfg: RunConfig
    profile: str
    root: Path | None = None

    @property
    def id(self) -> str:
        return self.cfg.run_id

    @property
    def folder(self) -> Path:
        return run_dir(self.profile, self.cfg.run_id, self.root)

    def state(self) -> str:
        """'done', 'trained' or 'new', after repairing what a killed step left (check_run)."""
        return check_run(self.folder)

    def finished(self) -> bool:
        """Marked DONE over readable metrics (read-only: repairs happen under the lock)."""
        return finished(self.folder)

    def metrics(self) -> dict:
        return read_json(self.folder / "metrics.json")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary sibling, then rename: readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"tmp-{os.getpid()}-{path.name}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:  # a full disk, an interrupt: no temporary file left and
        tmp.unlink(missing_ok=True)  # `path` as it was
        if isinstance(error, OSError) and error.filename is None:  # write errors name no file
            raise OSError(error.errno, error.strerror or str(error), str(path)) from error
        raise


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_torch(path: Path, obj) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_torch(path: Path, device="cpu"):
    return torch.load(path, map_location=device, weights_only=False)


def is_done(folder: Path) -> bool:
    return (Path(folder) / DONE).exists()


RUN_KEYS = ("run_id", "variant", "estimators")  # what every finished run's metrics.json has
DONE, TRAINED, CHECKPOINT = "DONE", "TRAINED", "checkpoint.pt"  # a run folder's markers
PER_IMAGE = "per_image.npz"  # every estimator's estimate for every test image (float32)


def finished(folder: Path) -> bool:
    """DONE over a readable metrics.json of this run: a read-only check (check_run repairs)."""
    folder = Path(folder)
    return (folder / DONE).exists() and metrics_problem(
        folder / "metrics.json", folder.name
    ) is None


def check_run(folder: Path) -> str:
    """The state of a run folder, checked rather than trusted: "done" (DONE over a readable
    metrics.json of this run), "trained" (TRAINED over a loadable checkpoint.pt and a
    history.csv with rows), or "new". A marker over damaged files is removed, and so is an
    unloadable checkpoint, each with a message on stderr naming the file, so that the work
    they stood for is done again instead of crashing a reader."""
    folder = Path(folder)
    if (folder / DONE).exists():
        problem = metrics_problem(folder / "metrics.json", folder.name)
        if problem is None:
            return "done"
        _redo(folder / DONE, problem, "evaluated again")
    checkpoint = folder / CHECKPOINT
    if checkpoint.exists():
        try:
            state = load_torch(checkpoint)
            problem = None if isinstance(state, dict) and "model" in state else "has no weights"
        except Exception as error:  # truncated or garbage: torch/pickle raise many types
            problem = f"cannot be loaded ({type(error).__name__})"
        if problem is not None:
            _redo(checkpoint, f"{checkpoint} {problem}", "")
    if (folder / TRAINED).exists():
        problem = _trained_problem(folder)
        if problem is None:
            return "trained"
        _redo(folder / TRAINED, problem, "trained again")
    return "new"


def metrics_problem(path: Path, run_id: str) -> str | None:
    try:
        metrics = read_json(path)
    except (OSError, ValueError) as error:
        return f"{path} is missing or unreadable ({type(error).__name__})"
    if not isinstance(metrics, dict) or any(k not in metrics for k in RUN_KEYS):
        return f"{path} lacks some of {', '.join(RUN_KEYS)}"
    if metrics["run_id"] != run_id or not isinstance(metrics["estimators"], dict):
        return f"{path} is not the metrics of run {run_id}"
    return None


def _trained_problem(folder: Path) -> str | None:
    if not (folder / CHECKPOINT).exists():
        return f"{folder / CHECKPOINT} is missing"
    history = folder / "history.csv"
    try:
        rows = list(csv.reader(history.read_text().strip().splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        return f"{history} is missing or unreadable ({type(error).__name__})"
    if len(rows) < 2 or "loss" not in rows[0]:
        return f"{history} has no rows of loss terms"
    if any(len(row) != len(rows[0]) for row in rows):
        return f"{history} has rows cut short"
    return None


def _redo(path: Path, problem: str, then: str) -> None:
    path.unlink(missing_ok=True)
    print(f"jmvae: {problem}: removed {path.name}" + (f", {then}" if then else ""),
          file=sys.stderr)  # fmt: skip


LOCK = "LOCK"  # held while a process makes a run (run_lock)
STALE_UNREADABLE_S = 60.0  # a lock file still empty after this long: its writer died


@contextlib.contextmanager
def run_lock(folder: Path, poll_s: float = 1.0, on_wait=None):
    """Hold <folder>/LOCK while making a run, so that concurrent processes share the work.

    The lock file is created exclusively and names its holder ("host pid"). A second process
    waits (polling every `poll_s` seconds; `on_wait(lock)` is told once) until it is released,
    and then finds the run done or makes it itself. A lock whose holder is gone (this host, no
    such process: a killed run) is taken over."""
    lock = Path(folder) / LOCK
    lock.parent.mkdir(parents=True, exist_ok=True)
    told = False
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if _lock_is_stale(lock):
                _take_over(lock)
            else:
                if on_wait is not None and not told:
                    on_wait(lock)
                    told = True
                time.sleep(poll_s)
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{socket.gethostname()} {os.getpid()}\n")
        break
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _lock_is_stale(lock: Path) -> bool:
    """Whether the holder of `lock` is gone: on this host, its process no longer exists."""
    try:
        text, age = lock.read_text().split(), time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return False  # released meanwhile: the next attempt creates it
    if len(text) != 2 or not text[1].isdigit():  # created, not yet written (or damaged)
        return age > STALE_UNREADABLE_S
    host, pid = text[0], int(text[1])
    return host == socket.gethostname() and not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _take_over(lock: Path) -> None:
    """Move a stale lock aside (one taker wins the rename); the caller then creates its own."""
    aside = lock.with_name(f"{LOCK}.stale-{os.getpid()}")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return  # another process took it over first
    if not _lock_is_stale(aside):  # a fresh lock was moved (another taker was quicker): back
        with contextlib.suppress(OSError):
            os.link(aside, lock)
    aside.unlink(missing_ok=True)


NOT_COLLECTED = (CHECKPOINT, "LOCK*", "tmp-*")  # weights and a live process's files stay
COLLECT_LIMIT_BYTES = 20 * 2**20  # a run's small files are kilobytes to a few megabytes


def collect_runs(source: Path, profile: str, root: Path | None = None) -> dict[str, list[str]]:
    """Copy the finished runs of `profile` under a results folder `source` into this study's
    results folder (default: results/), without checkpoints: {"copied", "present", "unfinished"}
    -> run ids. A run's files are copied first and its DONE last, so a copy cut short is no
    result; a run already finished here is left as it is."""
    runs = runs_dir(profile, source)
    if not runs.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"it has no {profile}/runs/ folder", str(source))
    report: dict[str, list[str]] = {"copied": [], "present": [], "unfinished": []}
    for folder in sorted(p for p in runs.iterdir() if p.is_dir()):
        target = run_dir(profile, folder.name, root)
        if not finished(folder):
            report["unfinished"].append(folder.name)
            continue
        if finished(target):
            report["present"].append(folder.name)
            continue
        files = [
            f for f in sorted(folder.iterdir())
            if f.is_file() and f.name != DONE and not any(f.match(p) for p in NOT_COLLECTED)
        ]  # fmt: skip
        large = [f.name for f in files if f.stat().st_size > COLLECT_LIMIT_BYTES]
        if large:
            raise ConfigError(f"{folder}: {large} over {COLLECT_LIMIT_BYTES >> 20} MiB: not small")
        stored = {k: v for k, v in read_json(folder / "config.json").items() if k != "profile"}
        if RunConfig.from_dict(stored).run_id != folder.name:
            raise ConfigError(f"{folder}: its config.json does not hash to the folder's name")
        for f in files:
            atomic_write_bytes(target / f.name, f.read_bytes())
        mark_done(target)
        report["copied"].append(folder.name)
    return report


def mark_done(folder: Path) -> None:
    """Written last: a folder without DONE is an unfinished run, never a result."""
    write_text(Path(folder) / DONE, "done\n")


@functools.cache
def git_commit() -> str:
    """The full commit hash, '-dirty' if jmvae_core has uncommitted changes; outside git (a
    copy of the tree sent to another machine) $JMVAE_GIT_COMMIT, else 'unknown'. Read once per
    process, at its first call: a run that trains for hours records the code it started with,
    not a commit made while it ran (runs call it before training)."""
    try:
        run = lambda *a: subprocess.run(  # noqa: E731
            ["git", *a], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        commit = run("rev-parse", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no", "--", "jmvae_core")
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return os.environ.get(COMMIT_ENV) or "unknown"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def provenance(device: torch.device) -> dict:
    """What every run records besides its config: versions, device and code commit."""
    return {
        "device": device.type,
        "device_name": device_name(device),
        "torch": torch.__version__.split("+")[0],
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "git_commit": git_commit(),
    }


PROBE = "probe.json"  # the latent linear probe (jmvae_core.probe), its own provenance


def write_benchmark(report: dict, out: Path, kind: str) -> Path:
    """<out>/<device-slug>-<kind>.json from a report naming its "device"; returns the path."""
    slug = re.sub(r"[^a-z0-9]+", "-", report["device"].lower()).strip("-")
    Path(out).mkdir(parents=True, exist_ok=True)
    path = Path(out) / f"{slug}-{kind}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    return path
