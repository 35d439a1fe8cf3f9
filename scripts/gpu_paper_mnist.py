"""The paper profile of MNIST on one GPU: every run trained in batched groups, then evaluated.

    bash scripts/gpu_paper_mnist.sh OUT_DIR [--epochs N] [--groups jmvae_kl-z64,vae-z2] ...

The runs of config.plan("paper") (39: five variants x seeds at latent 64, JMVAE-kl for three
alphas, plus four 2-D latent runs) are grouped by (variant, latent_dim), e.g. "jmvae_kl-z64"
(15 runs) or "vae-z2" (1 run). Each group trains as one stacked computation (fit_batched with
draws="epoch" and, on CUDA, step_mode="graph" after a graph-vs-eager self-check; on a CPU
"eager"), then each run is evaluated as runs.evaluate_run does (SPEC §4 estimators on the
test set with the config's k and n_prior, label accuracy, coherence, figure arrays).
Written under OUT_DIR:
    results/paper/runs/<run_id>/  config.json history.csv TRAINED checkpoint.pt (final weights)
                                  metrics.json arrays.npz DONE   -- runs.py's layout
    work/checkpoints/<group>/group.pt   a group's training state while it trains (deleted after)
    paper_results.tar.gz   every finished run's small files (no .pt): `tar -xzf ... -C results/`
    timing.json            device, seconds per group, ms per epoch per run, evaluation seconds,
                           peak GPU memory, the self-check; one entry per call
    log.txt                (written by the .sh)
Resumable: a group whose runs are all DONE is skipped, an interrupted group resumes from its
checkpoint, and --time-budget stops cleanly at a checkpoint so that the next call goes on.

Sizing: a group checkpoint holds weights and Adam moments, about 37 MB per run at latent 64
(560 MB for the 15 JMVAE-kl runs), so it cannot travel back from a lent machine: a call should
finish the groups it starts (--max-group-runs cuts a group into parts; each run draws from its
own seeded generator, so parts give the runs of the whole group up to float rounding), or the
next call must come while the same machine is held. Finished runs travel in the archive:
extracted into OUT_DIR/results on a fresh machine, they are skipped there.

Needs torch and numpy only. tqdm (imported by jmvae_core) is installed by the .sh from carried
wheels if missing, else replaced here by a silent stand-in; pandas is not needed: training
files are written here, the evaluation is runs.write_evaluation (pandas-free for MNIST), and
tests/test_gpu_paper_mnist.py checks the files against runs.py's.
Epoch draws are not train.fit's random stream (same distribution): history rows record
"draws" and "step_mode", metrics.json records "batched".
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.machinery
import io
import json
import shutil
import sys
import tarfile
import time
import types
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROFILE = "paper"
RUN_FILES = ("config.json", "history.csv", "TRAINED", "metrics.json", "arrays.npz", "DONE")
CHECK_TOLERANCE = 1e-4  # graph vs eager self-check: relative losses, absolute weights


def _tqdm_stand_in() -> None:
    """Put a silent `tqdm` in sys.modules if the package is missing (this process only)."""
    try:
        import tqdm  # noqa: F401
    except ImportError:

        class _Bar:
            def __init__(self, iterable=None, *args, **kwargs):
                self.iterable = iterable

            def __iter__(self):
                return iter(self.iterable)

            def __getattr__(self, name):  # set_postfix, update, close, ...: do nothing
                return lambda *args, **kwargs: None

            write = staticmethod(print)

        module = types.ModuleType("tqdm")
        module.tqdm = _Bar
        # a spec, as an imported module has: torch._dynamo looks modules up by name
        module.__spec__ = importlib.machinery.ModuleSpec("tqdm", None)
        sys.modules["tqdm"] = module
        print("tqdm is not installed: a silent stand-in is used", file=sys.stderr)


_tqdm_stand_in()

from jmvae_core import results, runs  # noqa: E402
from jmvae_core.batched import fit_batched  # noqa: E402
from jmvae_core.batched_step import differences  # noqa: E402
from jmvae_core.config import plan  # noqa: E402
from jmvae_core.data import MNIST_MD5, load_mnist, mnist_dir  # noqa: E402
from jmvae_core.models import build_model  # noqa: E402
from jmvae_core.train import CHECKPOINT  # noqa: E402


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="output folder (OUT_DIR)")
    p.add_argument("--epochs", type=int, help="override the profile's 500 (a short test)")
    p.add_argument("--n-train", type=int, help="first N training images (default: all)")
    p.add_argument("--n-test", type=int, help="first N test images (default: all 10,000)")
    p.add_argument("--k", type=int, help="importance samples (default: the profile's 1000)")
    p.add_argument("--n-prior", type=int, help="prior samples for log p(w) (default: 5000)")
    p.add_argument("--groups", help="comma-separated subset, e.g. jmvae_kl-z64,vae-z2")
    p.add_argument("--max-group-runs", type=int,
                   help="cut larger groups into parts of N runs (shorter calls)")  # fmt: skip
    p.add_argument("--device", default="cuda")
    p.add_argument("--step-mode", choices=("graph", "compile", "eager"), default="graph",
                   help="graph (CUDA only; eager elsewhere), compile or eager")  # fmt: skip
    p.add_argument("--no-graph-check", action="store_true", help="skip the self-check")
    p.add_argument("--time-budget", type=float, help="seconds; stop cleanly before they end")
    p.add_argument("--reserve", type=float, default=60.0,
                   help="seconds kept for writing the archive when a budget is set")  # fmt: skip
    p.add_argument("--checkpoint-every", type=int, default=10, help="epochs between checkpoints")
    p.add_argument("--checkpoint-dir", type=Path, help="default: in OUT_DIR's work folder")
    p.add_argument("--git-commit", help="record this commit (where the copy has no .git)")
    p.add_argument("--export", type=Path, help="also copy archive, timing and log there")
    return p.parse_args(argv)


def group_runs(cfgs, wanted: str | None, max_runs: int | None = None) -> dict[str, list]:
    """The plan's runs grouped by (variant, latent_dim), in plan order: {"vae-z64": [...]}.

    With `max_runs`, a larger group is cut into parts of at most that many runs, named
    "jmvae_kl-z64.1", "jmvae_kl-z64.2", ...; `wanted` may name groups or parts, in the
    order they are to run."""
    whole: dict[str, list] = {}
    for cfg in cfgs:
        whole.setdefault(f"{cfg.model.variant}-z{cfg.model.latent_dim}", []).append(cfg)
    groups: dict[str, list] = {}
    for name, members in whole.items():
        size = max_runs or len(members)
        parts = [members[i : i + size] for i in range(0, len(members), size)]
        for j, part in enumerate(parts, 1):
            groups[name if len(parts) == 1 else f"{name}.{j}"] = part
    if wanted:
        names = [n.strip() for n in wanted.split(",") if n.strip()]
        unknown = [n for n in names if n not in groups and n not in whole]
        if unknown:
            raise SystemExit(f"unknown group(s) {unknown}; known: {', '.join(groups)}")
        picked = {}  # in the order asked: the first groups are done first
        for n in names:
            picked |= {g: r for g, r in groups.items() if n in (g, g.split(".")[0])}
        groups = picked
    return groups


class Budget:
    """Wall-clock seconds left of --time-budget (unlimited without one)."""

    def __init__(self, seconds: float | None, reserve: float):
        self.end = None if seconds is None else time.monotonic() + seconds
        self.reserve = reserve

    def allows(self, seconds: float) -> bool:
        """Whether `seconds` more work fits, keeping the reserve for the final writes."""
        return self.end is None or time.monotonic() + seconds + self.reserve < self.end


def load_data(args, device):
    """MNIST on `device`, or exit naming the folder the runner must carry."""
    folder = mnist_dir()
    missing = [n for n in MNIST_MD5 if not (folder / n).exists()]
    if missing:
        raise SystemExit(
            f"MNIST files {missing} are missing from {folder}: carry the repository's "
            "data/mnist folder (the four uncompressed IDX files) to this machine"
        )
    return load_mnist(device=device, n_train=args.n_train, n_test=args.n_test)


def check_step_mode(cfgs, data, device, mode: str) -> dict:
    """Train two runs of the group for 2 short epochs (1,000 images) eagerly and in `mode`
    from the same draws; they must agree to CHECK_TOLERANCE. A capture that replays a stale
    batch, skips or repeats an update, or stops learning differs by far more."""
    small = dataclasses.replace(data, x_train=data.x_train[:1000], w_train=data.w_train[:1000])
    kw = {"device": device, "progress": False, "epochs": 2, "draws": "epoch"}
    kw["per_run_adam"] = False
    start = time.perf_counter()
    eager = fit_batched(cfgs[:2], small, step_mode="eager", **kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        other = fit_batched(cfgs[:2], small, step_mode=mode, **kw)
    loss_rel, param_abs = differences(eager, other)
    used = other[1][0][-1]["step_mode"]
    ok = used == mode and loss_rel <= CHECK_TOLERANCE and param_abs <= CHECK_TOLERANCE
    return {
        "ok": ok,
        "mode": mode,
        "mode_used": used,
        "loss_rel": loss_rel,
        "param_abs": param_abs,
        "tolerance": CHECK_TOLERANCE,
        "seconds": round(time.perf_counter() - start, 2),
        "warnings": [str(w.message) for w in caught],
    }


def write_trained(folder: Path, cfg, model, history, device, extra: dict) -> None:
    """config.json, history.csv, checkpoint.pt (final weights) and TRAINED, as runs.train_run."""
    results.write_json(folder / "config.json", {"profile": PROFILE, **cfg.to_dict()})
    columns = list(dict.fromkeys(k for row in history for k in row))
    lines = [",".join(columns)]
    lines += [",".join(_csv(row.get(c, "")) for c in columns) for row in history]
    results.write_text(folder / "history.csv", "\n".join(lines) + "\n")
    results.save_torch(folder / CHECKPOINT, {"model": model.state_dict(), "history": history})
    results.write_json(folder / "TRAINED", {**results.provenance(device), **extra})


def _csv(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)  # pandas' float format


def read_trained(folder: Path, cfg, device):
    """(model, history) of a run whose TRAINED folder was written by write_trained."""
    state = results.load_torch(folder / CHECKPOINT, device)
    model = build_model(cfg.model).to(device)
    model.load_state_dict(state["model"])
    return model.eval(), state["history"]


def train_group(name, cfgs, data, device, mode, args, budget, report) -> list | None:
    """Train (or resume) a group into its run folders: [(model, history)] per run, or None
    if the time budget stopped it at a checkpoint."""
    ckpt = (args.checkpoint_dir or args.out / "work" / "checkpoints") / name / "group.pt"
    if mode != "eager" and not args.no_graph_check:
        report["check"] = check_step_mode(cfgs, data, device, mode)
        print(f"{name}: {mode} self-check {report['check']}", flush=True)
        if not report["check"]["ok"]:
            warnings.warn(f"{name}: {mode} disagrees with eager: training eagerly", stacklevel=2)
            mode = "eager"
    seconds: list[float] = []  # this call's epochs: wall time of the whole group

    def on_epoch_end(rows) -> bool:
        seconds.append(rows[0]["time_s"] * len(rows))  # time_s is each run's share
        if rows[0]["epoch"] % 10 == 0 or len(seconds) == 1:
            print(f"{name}: epoch {rows[0]['epoch']}, {seconds[-1]:.2f} s", flush=True)
        return not budget.allows(2 * seconds[-1])

    start = time.perf_counter()
    models, histories = fit_batched(
        cfgs, data, device, False, draws="epoch", step_mode=mode, checkpoint=ckpt,
        checkpoint_every=args.checkpoint_every, on_epoch_end=on_epoch_end,
    )  # fmt: skip
    report.update(train_seconds=round(time.perf_counter() - start, 2), epochs_trained=len(seconds))
    report["epochs_done"] = len(histories[0])
    if seconds:  # the first epoch includes the warm-up and the capture
        report["first_epoch_s"] = round(seconds[0], 3)
        report["ms_per_epoch_per_run"] = round(1000 * float(np.median(seconds)) / len(cfgs), 3)
        report["step_mode_used"] = histories[0][-1]["step_mode"]
    if len(histories[0]) < cfgs[0].train.epochs:
        return None
    for cfg, model, history in zip(cfgs, models, histories, strict=True):
        folder = results.run_dir(PROFILE, cfg.run_id, args.out / "results")
        write_trained(folder, cfg, model, history, device, _extra(args, history))
    ckpt.unlink(missing_ok=True)  # the run folders hold the final weights now
    with contextlib.suppress(OSError):
        ckpt.parent.rmdir()
    return list(zip(models, histories, strict=True))


def _extra(args, history) -> dict:
    """What the files record beyond runs.py's: the batched training, the commit if given."""
    last = history[-1]
    out = {"batched": {k: last.get(k) for k in ("draws", "step_mode", "batch_runs")}}
    return out | ({"git_commit": args.git_commit} if args.git_commit else {})


def run_group(name, cfgs, data, device, args, budget) -> dict:
    """Train and evaluate one group; its timing report ("status": cached/done/stopped)."""
    folders = [results.run_dir(PROFILE, c.run_id, args.out / "results") for c in cfgs]
    report = {"runs": len(cfgs), "epochs": cfgs[0].train.epochs}
    if all(results.is_done(f) for f in folders):
        return {**report, "status": "cached"}
    mode = args.step_mode if device.type == "cuda" or args.step_mode != "graph" else "eager"
    report["step_mode"] = mode  # graph asked off CUDA: eager
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    report["status"] = _train_and_evaluate(
        name, cfgs, folders, data, device, mode, args, budget, report
    )
    if device.type == "cuda":
        report["peak_memory_bytes"] = torch.cuda.max_memory_allocated(device)
    return report


def _train_and_evaluate(name, cfgs, folders, data, device, mode, args, budget, report) -> str:
    """Train the group unless every run is TRAINED, then evaluate each run not DONE."""
    if all((f / "TRAINED").exists() for f in folders):
        trained = [read_trained(f, c, device) for f, c in zip(folders, cfgs, strict=True)]
    else:
        trained = train_group(name, cfgs, data, device, mode, args, budget, report)
        if trained is None:
            return "stopped"
    start = time.perf_counter()
    for folder, cfg, (model, history) in zip(folders, cfgs, trained, strict=True):
        if results.is_done(folder):
            continue
        if not budget.allows(report.get("eval_seconds_per_run", 0.0)):
            return "stopped"
        t = time.perf_counter()
        runs.write_evaluation(
            folder,
            cfg,
            PROFILE,
            model,
            data,
            history,
            device,
            progress=False,
            extra=_extra(args, history),
        )
        report["eval_seconds_per_run"] = round(time.perf_counter() - t, 2)
    report["eval_seconds"] = round(time.perf_counter() - start, 2)
    return "done"


def write_archive(out: Path) -> int:
    """OUT/paper_results.tar.gz: the small files of every DONE run; returns the run count."""
    base = out / "results"
    done = sorted(f for f in (base / PROFILE / "runs").glob("*/") if results.is_done(f))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for folder in done:
            for name in RUN_FILES:
                tar.add(folder / name, arcname=str((folder / name).relative_to(base)))
    results.atomic_write_bytes(out / "paper_results.tar.gz", buffer.getvalue())
    return len(done)


def main(argv=None) -> dict:
    """Run the study (or what is left of it); returns this call's timing entry."""
    args = parse(argv)
    start = time.perf_counter()
    budget = Budget(args.time_budget, args.reserve)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda, but torch sees no CUDA device (use --device cpu)")
    overrides = {"epochs": args.epochs, "n_train": args.n_train, "n_test": args.n_test}
    overrides |= {"k": args.k, "n_prior": args.n_prior}
    cfgs = plan(PROFILE, **{k: v for k, v in overrides.items() if v is not None})
    groups = group_runs(cfgs, args.groups, args.max_group_runs)
    data = load_data(args, device)
    entry = {"device": results.device_name(device), "torch": torch.__version__,
             "argv": list(argv if argv is not None else sys.argv[1:]), "groups": {}}  # fmt: skip
    for name, group in groups.items():
        if not budget.allows(0.0):
            entry["groups"][name] = {"status": "not started (time budget)"}
            continue
        entry["groups"][name] = report = run_group(name, group, data, device, args, budget)
        print(f"{name}: {json.dumps(report)}", flush=True)
    entry["complete"] = all(g.get("status") in ("done", "cached") for g in entry["groups"].values())
    entry["runs_done"] = write_archive(args.out)
    entry["seconds"] = round(time.perf_counter() - start, 2)
    timing_path = args.out / "timing.json"
    timing = results.read_json(timing_path) if timing_path.exists() else {"calls": []}
    timing["calls"].append(entry)
    results.write_json(timing_path, timing)
    state = "complete" if entry["complete"] else "not complete: run the same command again"
    print(f"{entry['runs_done']} runs done in {args.out}; {state}", flush=True)
    if args.export is not None:
        args.export.mkdir(parents=True, exist_ok=True)
        for name in ("paper_results.tar.gz", "timing.json", "log.txt"):
            if (args.out / name).exists():
                shutil.copyfile(args.out / name, args.export / name)
    return entry


if __name__ == "__main__":
    main()
