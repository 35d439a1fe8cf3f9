"""The paper profile of MNIST on one GPU in one call: every run trained in one step, evaluated.

    bash scripts/gpu_paper_mnist.sh OUT_DIR [--time-budget 540] [--epochs N] [--groups ...]

The 39 runs of config.plan("paper") (five variants x five seeds at latent 64, JMVAE-kl for
three alphas, and four 2-D latent runs) train together: fit_batched with draws="epoch" steps
all nine architecture groups in one call, on CUDA one stream per group, all captured in one
CUDA graph (step_mode "graph"; eager on a CPU); groups larger than --max-group-runs (5) are
cut into parts, so the 15 JMVAE-kl runs at latent 64 form three parallel branches. In order,
one call:
 1. precision of the training matmuls: float32 unless MATMUL_DECISION (committed) records
    another decision or --matmul says otherwise, so that every piece trains alike and
    Table 1 never mixes precisions. --matmul measure (CUDA only) makes that decision: the
    five seeds of JMVAE-kl alpha 0.1 trained --precision-epochs epochs in float32 and in
    TF32 (one group each), then the marginal log p(x) of each run with the same float32
    estimator and draws on --precision-n-test test images: TF32 only when |mean paired
    difference| + 2 SE < 0.1 nats; the report is written to OUT_DIR/matmul_decision.json (and
    exported), to be committed as MATMUL_DECISION;
 2. a self-check of the step mode: one run of each group, 2 epochs of 1,000 images, eagerly
    and in the step mode from the same draws; beyond CHECK_TOLERANCE the plan trains eagerly;
 3. training of every run not yet TRAINED, with a budget guard (--time-budget): after each
    epoch the time still needed (epochs left x the median epoch, the evaluation, --reserve)
    is projected, and training stops cleanly when it does not fit, saying how far it got;
 4. precision of the estimators (--estimator-precision measure): every estimator of one run
    per group, decoders in float32 and in bfloat16 on the same draws (benchmarks/
    estimator_precision.py); bfloat16 serves the evaluation only if every mean shift is below
    0.1 nats;
 5. evaluation of every run not DONE as runs.write_evaluation (the five estimators with the
    profile's k = 1000 and N = 5000 on the 10,000 test images, accuracy, coherence, arrays);
 6. if time is left, a profile of one step (benchmarks/plan_step.py: kernels, ms, matmul
    rate against the measured peak), whole plan and each group alone;
 7. OUT_DIR/paper_results.tar.gz (--smoke: smoke_results.tar.gz; every DONE run's small
    files and the digit judge's record:
    `tar -xzf ... -C results/`),
    OUT_DIR/timing.json (one entry per call: device, each stage's seconds and report).
Run folders: OUT_DIR/results/paper/runs/<run_id>/ in study/runs.py's layout (config.json,
history.csv, TRAINED, checkpoint.pt with the final weights, metrics.json, arrays.npz,
per_image.npz, probe.json, DONE).
Nothing needs to survive between calls: a call that finishes writes everything; a second
call on a machine that kept OUT_DIR skips DONE runs and evaluates TRAINED ones.
With --checkpoint-every N the training state of all runs (about 37 MB per run) is also saved
every N epochs to OUT_DIR/state/plan.pt and resumed from by a later call.

--smoke runs every stage on the whole plan at throwaway sizes (SMOKE: 2 epochs of 1,000
images, k = 10, 200 test images) and then, in place of stage 6, times a step of the plan and
of each group alone in float32 and, on CUDA, TF32 (timing.json's "step_times").
Pieces: --piece NAME (PIECES, in the order the plan is made) or --piece next, and the run
filter --variant/--alpha/--latent/--seeds, choose the runs of one call; runs DONE in the
committed results/ (--committed) are never made again. Whatever ends the call (success, an
exception, SIGTERM, the budget), it writes the archive of its DONE runs, timing.json and the
export. gpu_kit/ (scripts/gpu_kit.py) brings MNIST gzipped, the digit judge and the commit
the files record (--git-commit overrides it).
Needs torch and numpy only. tqdm (imported by jmvae_core) is installed by the .sh from carried
wheels if missing, else replaced here by a silent stand-in; pandas is not needed.
Epoch draws are not train.fit's random stream (same distribution): history rows record
"draws" and "step_mode", metrics.json records "batched" and "training_matmul".
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.machinery
import io
import json
import math
import os
import shutil
import signal
import sys
import tarfile
import time
import traceback
import types
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))

PROFILE = "paper"
RUN_FILES = (
    "config.json", "history.csv", "TRAINED", "metrics.json", "arrays.npz", "per_image.npz",
    "probe.json", "DONE",
)  # fmt: skip
ARCHIVE = "paper_results.tar.gz"
SMOKE_ARCHIVE = "smoke_results.tar.gz"  # --smoke's runs: never to be extracted into results/
# --smoke: every stage at throwaway sizes (the runs' ids differ from the paper's)
SMOKE = {"epochs": 2, "n_train": 1000, "n_test": 200, "k": 10, "n_prior": 50, "n_judged": 20}
SMOKE_STEPS = 20  # steps per step profile in --smoke
JUDGE_FILES = ("accuracy.json", "DONE")  # the digit judge's record (its weights stay behind)
# The plan made a piece at a time, one GPU command each, in this order (each a run filter;
# together they hold the 39 runs once): the headline's seeds first, then its baseline.
PIECES = {
    "jmvae_kl-a0.1": {"variants": {"jmvae_kl"}, "alphas": {0.1}, "latents": {64}},
    "vae": {"variants": {"vae"}, "latents": {64}},
    "cvae": {"variants": {"cvae"}, "latents": {64}},
    "jmvae_zero-cmma": {"variants": {"jmvae_zero", "cmma"}, "latents": {64}},
    "jmvae_kl-a0.01-a1": {"variants": {"jmvae_kl"}, "alphas": {0.01, 1.0}, "latents": {64}},
    "latent-2": {"latents": {2}},
}
CHECK_TOLERANCE = 1e-4  # graph vs eager self-check: relative losses, absolute weights
TF32_LIMIT = 0.1  # nats: |mean shift| + 2 SE of log p(x) must stay below it for TF32
MATMUL_DECISION = ROOT / "benchmarks" / "results" / "gpu_matmul_decision.json"


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

import estimator_precision  # noqa: E402
import gpu_kit  # noqa: E402
import plan_step  # noqa: E402

from jmvae_core import environment, store  # noqa: E402
from jmvae_core.config import make_config, plan  # noqa: E402
from jmvae_core.data.mnist import MNIST_MD5, load_mnist, mnist_dir  # noqa: E402
from jmvae_core.measure import estimators  # noqa: E402
from jmvae_core.study import plan_training, runs  # noqa: E402
from jmvae_core.training.batched import fit_batched  # noqa: E402
from jmvae_core.training.batched_step import GRAPH_MODES, differences  # noqa: E402


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="output folder (OUT_DIR)")
    p.add_argument("--smoke", action="store_true",
                   help="every stage on the whole plan at throwaway sizes, then step times of "
                   "the plan and each group in fp32 and (CUDA) TF32; archive: "
                   f"{SMOKE_ARCHIVE}, never extracted into results/")  # fmt: skip
    p.add_argument("--epochs", type=int, help="override the profile's 500 (a short test)")
    p.add_argument("--n-train", type=int, help="first N training images (default: all)")
    p.add_argument("--n-test", type=int, help="first N test images (default: all 10,000)")
    p.add_argument("--k", type=int, help="importance samples (default: the profile's 1000)")
    p.add_argument("--n-prior", type=int, help="prior samples for log p(w) (default: 5000)")
    p.add_argument("--n-judged", type=int, help="images per digit for the judge (default: 1000)")
    p.add_argument("--groups", help="a subset of the groups, e.g. jmvae_kl-z64,vae-z2")
    p.add_argument("--piece", help=f"one piece of the plan: {', '.join(PIECES)}; or 'next', "
                   "the first with a run not done")  # fmt: skip
    p.add_argument("--variant", help="only these variants, e.g. jmvae_kl,vae")
    p.add_argument("--alpha", help="only these alphas, e.g. 0.1 (0 for models without one)")
    p.add_argument("--latent", help="only these latent sizes, e.g. 64")
    p.add_argument("--seeds", help="only these seeds, e.g. 2-5 or 1,3")
    p.add_argument("--kit", type=Path, default=gpu_kit.KIT,
                   help="scripts/gpu_kit.py's folder: MNIST gzipped, the digit judge")  # fmt: skip
    p.add_argument("--committed", type=Path, default=ROOT / "results",
                   help="results folder whose DONE runs are skipped (default: the "
                   "repository's results/; '' for none)")  # fmt: skip
    p.add_argument("--device", default="cuda")
    p.add_argument("--step-mode", choices=("graph", "compile-graph", "compile", "eager"),
                   default="graph", help="graph modes need CUDA (eager elsewhere)")  # fmt: skip
    p.add_argument("--no-graph-check", action="store_true", help="skip the self-check")
    p.add_argument("--max-group-runs", type=int, default=5,
                   help="cut larger groups into parts (CUDA: parallel branches)")  # fmt: skip
    p.add_argument("--matmul", choices=("measure", "fp32", "tf32"), default=None,
                   help="training matmuls (default: the committed decision, else fp32); "
                   "measure: stage 1 decides (CUDA only)")  # fmt: skip
    p.add_argument("--precision-epochs", type=int, default=10)
    p.add_argument("--precision-n-test", type=int, default=2000)
    p.add_argument("--estimator-precision", choices=("measure", "fp32", "bf16"),
                   default="measure", help="decoders of the estimators (stage 4)")  # fmt: skip
    p.add_argument("--time-budget", type=float, help="seconds; stop cleanly before they end")
    p.add_argument("--reserve", type=float, default=30.0,
                   help="seconds kept for writing the archive when a budget is set")  # fmt: skip
    p.add_argument("--eval-estimate", type=float, default=6.0,
                   help="seconds per run assumed for evaluation until one is measured (an "
                   "estimate read from the code: 110-250 s for the 39 runs on an H200; each "
                   "call records the measured one, evaluate.s_per_run)")  # fmt: skip
    p.add_argument("--checkpoint-every", type=int, default=0, help="epochs; 0: no checkpoint")
    p.add_argument("--profile-steps", type=int, default=50, help="0: no step profile")
    p.add_argument("--git-commit", help="record this commit (where the copy has no .git)")
    p.add_argument("--export", type=Path, help="also copy archive, timing and log there")
    args = p.parse_args(argv)
    if args.smoke:  # the given sizes win; nothing committed is skipped (other run ids)
        for name, value in SMOKE.items():
            setattr(args, name, value if getattr(args, name) is None else getattr(args, name))
        args.committed = None
    return args


def group_name(cfg) -> str:
    return f"{cfg.model.variant}-z{cfg.model.latent_dim}"


def select(cfgs, wanted: str | None) -> list:
    """The plan's runs, or those of the named groups ("jmvae_kl-z64,vae-z2"), in plan order."""
    if not wanted:
        return list(cfgs)
    names = {n.strip() for n in wanted.split(",") if n.strip()}
    known = dict.fromkeys(group_name(c) for c in cfgs)
    unknown = sorted(names - set(known))
    if unknown:
        raise SystemExit(f"unknown group(s) {unknown}; known: {', '.join(known)}")
    return [c for c in cfgs if group_name(c) in names]


def _numbers(text: str | None, kind, option: str) -> set | None:
    """A comma list of numbers ("0.01,1"), or for seeds also a range ("2-5"); None if absent."""
    if not text:
        return None
    try:
        if kind is int and "-" in text:
            first, last = (int(t) for t in text.split("-"))
            return set(range(first, last + 1))
        return {kind(t) for t in text.split(",") if t.strip()}
    except ValueError:
        raise SystemExit(f"{option} {text!r}: expected numbers such as 2-5 or 1,3") from None


def run_filter(args) -> dict:
    """The filter of --piece (a named one; 'next' is resolved later) and of --variant,
    --alpha, --latent and --seeds together: each given option narrows the plan further."""
    spec: dict = {}
    if args.piece and args.piece != "next":
        if args.piece not in PIECES:
            raise SystemExit(f"unknown piece {args.piece!r}; known: {', '.join(PIECES)}, next")
        spec = dict(PIECES[args.piece])
    for key, value in (
        ("variants", {v.strip() for v in args.variant.split(",")} if args.variant else None),
        ("alphas", _numbers(args.alpha, float, "--alpha")),
        ("latents", _numbers(args.latent, int, "--latent")),
        ("seeds", _numbers(args.seeds, int, "--seeds")),
    ):
        if value is not None:
            spec[key] = value if key not in spec else spec[key] & value
    return spec


def narrow(cfgs, variants=None, alphas=None, latents=None, seeds=None) -> list:
    """The runs that pass every given part of a filter, in plan order."""

    def keep(c) -> bool:
        return (
            (variants is None or c.model.variant in variants)
            and (alphas is None or any(math.isclose(c.model.alpha, a) for a in alphas))
            and (latents is None or c.model.latent_dim in latents)
            and (seeds is None or c.train.seed in seeds)
        )

    return [c for c in cfgs if keep(c)]


def committed_done(cfgs, committed: Path | None) -> list[str]:
    """The run ids among `cfgs` that the committed results folder holds as DONE (checked, not
    trusted: DONE over this run's readable metrics.json); nothing there is changed."""
    if committed is None or not str(committed):
        return []
    return [
        c.run_id
        for c in cfgs
        if store.is_done(folder := store.run_dir(PROFILE, c.run_id, committed))
        and store.metrics_problem(folder / "metrics.json", c.run_id) is None
    ]


def next_piece(cfgs, skip: set[str], out: Path) -> str | None:
    """The first piece of PIECES with a run neither in `skip` nor DONE under `out`."""
    for name, spec in PIECES.items():
        if any(
            c.run_id not in skip and not store.is_done(store.run_dir(PROFILE, c.run_id, out))
            for c in narrow(cfgs, **spec)
        ):
            return name
    return None


class Budget:
    """Wall-clock seconds left of --time-budget (unlimited without one)."""

    def __init__(self, seconds: float | None, reserve: float):
        self.end = None if seconds is None else time.monotonic() + seconds
        self.reserve = reserve

    def allows(self, seconds: float) -> bool:
        """Whether `seconds` more work fits, keeping the reserve for the final writes."""
        return self.end is None or time.monotonic() + seconds + self.reserve < self.end

    def left(self) -> float | None:
        return None if self.end is None else round(self.end - time.monotonic(), 1)


def load_data(args, device):
    """MNIST on `device` (unpacked from the kit where data/mnist lacks it), or exit naming
    what the runner must carry."""
    folder = mnist_dir()
    if gpu_kit.unpack(args.kit, folder):
        print(f"MNIST unpacked from {args.kit} into {folder}", flush=True)
    missing = [n for n in MNIST_MD5 if not (folder / n).exists()]
    if missing:
        raise SystemExit(
            f"MNIST files {missing} are missing from {folder}: carry gpu_kit/ (made by "
            "`python scripts/gpu_kit.py prepare`) or the data/mnist folder to this machine"
        )
    return load_mnist(device=device, n_train=args.n_train, n_test=args.n_test)


def install_judge(kit: Path, results: Path) -> str:
    """The kit's digit judge(s) put where the evaluation looks (results/paper/), unless one
    is there already; says which judge the runs will be read by."""
    made = sorted(p for p in kit.glob("digit-judge-*/") if store.is_done(p))
    for judge in made:
        target = results / PROFILE / judge.name
        if not store.is_done(target):
            shutil.copytree(judge, target, dirs_exist_ok=True)
    if made:
        return f"from the kit: {', '.join(p.name for p in made)}"
    return "none in the kit: trained here on first use"


def _subset(data, n_train: int):
    return dataclasses.replace(data, x_train=data.x_train[:n_train], w_train=data.w_train[:n_train])


def check_step_mode(cfgs, data, device, mode: str) -> dict:
    """One run of each group, 2 epochs of 1,000 images, eagerly and in `mode` from the same
    draws: they must agree to CHECK_TOLERANCE. A capture that replays a stale batch, skips or
    repeats an update, or stops learning differs by far more."""
    firsts = list({group_name(c): c for c in reversed(cfgs)}.values())[::-1]
    kw = {"device": device, "progress": False, "epochs": 2, "draws": "epoch"}
    kw["per_run_adam"] = False
    small = _subset(data, 1000)
    start = time.perf_counter()
    eager = fit_batched(firsts, small, step_mode="eager", **kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        other = fit_batched(firsts, small, step_mode=mode, **kw)
    loss_rel, param_abs = differences(eager, other)
    used = other[1][0][-1]["step_mode"]
    ok = used == mode and loss_rel <= CHECK_TOLERANCE and param_abs <= CHECK_TOLERANCE
    return {
        "ok": ok, "mode": mode, "mode_used": used, "runs": len(firsts),
        "loss_rel": loss_rel, "param_abs": param_abs, "tolerance": CHECK_TOLERANCE,
        "seconds": round(time.perf_counter() - start, 2),
        "warnings": [str(w.message) for w in caught],
    }  # fmt: skip


def decide_matmul(shift: float, sem: float) -> str:
    """TF32 only when the paired shift, two standard errors out, stays below TF32_LIMIT."""
    return "tf32" if abs(shift) + 2 * sem < TF32_LIMIT else "fp32"


def recorded_matmul(path: Path = MATMUL_DECISION) -> str:
    """The committed decision of a --matmul measure call, else fp32."""
    return store.read_json(path)["decision"] if path.exists() else "fp32"


def compare_matmul(data, device, mode: str, args) -> dict:
    """Stage 1: five seeds of JMVAE-kl alpha 0.1, float32 vs TF32 training, paired log p(x)."""
    start = time.perf_counter()
    epochs = args.precision_epochs
    cfgs = [
        make_config(PROFILE, variant="jmvae_kl", alpha=0.1, seed=seed, epochs=epochs,
                    warmup_epochs=max(1, epochs // 2), n_train=args.n_train)
        for seed in range(1, 6)
    ]  # fmt: skip
    n = min(args.precision_n_test, data.x_test.shape[0])
    x, w = data.x_test[:n], data.w_test[:n]
    e = cfgs[0].eval
    k, n_prior = args.k or e.k, args.n_prior or e.n_prior
    means = {}
    for matmul in ("fp32", "tf32"):
        models, _ = fit_batched(cfgs, data, device, False, draws="epoch", step_mode=mode,
                                per_run_adam=False, matmul=matmul)  # fmt: skip
        means[matmul] = [
            float(estimators.evaluate(m, x, w, ["marginal"], k, n_prior, e.eval_seed,
                                      progress=False, precision="fp32")["marginal"].mean())
            for m in models
        ]  # fmt: skip
    diff = np.array(means["tf32"]) - np.array(means["fp32"])
    shift, sem = float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff)))
    return {
        "decision": decide_matmul(shift, sem),
        "shift": shift, "sem": sem, "limit": TF32_LIMIT, "per_seed": means,
        "epochs": epochs, "n_test": n, "k": k, "estimator": "marginal (fp32 decoders)",
        "seconds": round(time.perf_counter() - start, 2),
    }  # fmt: skip


def train(cfgs, data, device, mode, matmul, args, budget, report) -> list | None:
    """Stage 3: train `cfgs` in one plan step; [(model, history)] per run, or None if the
    budget guard stopped it (report["stopped"] says where and why)."""
    seconds: list[float] = []
    n_epochs = cfgs[0].train.epochs

    def on_epoch_end(rows) -> bool:
        seconds.append(rows[0]["time_s"] * len(rows))  # time_s is each run's share
        epoch = rows[0]["epoch"]
        if epoch % 10 == 0 or len(seconds) <= 2:
            print(f"epoch {epoch}/{n_epochs}: {seconds[-1]:.2f} s", flush=True)
        per_epoch = float(np.median(seconds[1:] or seconds))  # the first includes the capture
        need = (n_epochs - epoch) * per_epoch + args.eval_estimate * len(cfgs)
        if epoch < n_epochs and not budget.allows(need):
            report["stopped"] = (
                f"time budget: stopped after epoch {epoch} of {n_epochs}; finishing needs "
                f"about {need:.0f} s more ({per_epoch:.2f} s per epoch), {budget.left()} s left"
            )
            print(report["stopped"], flush=True)
            return True
        return False

    checkpoint = args.out / "state" / "plan.pt" if args.checkpoint_every > 0 else None
    start = time.perf_counter()
    models, histories = fit_batched(
        cfgs, data, device, False, draws="epoch", step_mode=mode, matmul=matmul,
        checkpoint=checkpoint, checkpoint_every=max(args.checkpoint_every, 1),
        on_epoch_end=on_epoch_end, per_run_adam=False if mode in GRAPH_MODES else None,
        max_group_runs=args.max_group_runs or None,
    )  # fmt: skip
    report.update(seconds=round(time.perf_counter() - start, 2), epochs_trained=len(seconds))
    report["epochs_done"] = len(histories[0])
    if seconds:
        report["first_epoch_s"] = round(seconds[0], 3)  # warm-up and capture included
        report["epoch_s"] = round(float(np.median(seconds[1:] or seconds)), 4)
        n_batches = data.x_train.shape[0] // cfgs[0].train.batch_size
        report["ms_per_step"] = round(1000 * report["epoch_s"] / n_batches, 4)
        report["step_mode_used"] = histories[0][-1]["step_mode"]
    if len(histories[0]) < n_epochs:
        return None
    for cfg, model, history in zip(cfgs, models, histories, strict=True):
        run = store.Run(cfg, PROFILE, args.out / "results")
        record = store.provenance(device) | _extra(args, history, matmul, mode)
        plan_training.write_trained(run, model, history, record)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)  # the run folders hold the final weights now
    return list(zip(models, histories, strict=True))


def _extra(args, history, matmul, mode="graph") -> dict:
    """What the files record beyond runs.py's: the batched training, its matmul precision."""
    out = plan_training.batched_record(history, matmul, "epoch", mode)
    return out | ({"git_commit": args.git_commit} if args.git_commit else {})


def measure_estimators(cfgs, trained, data, args) -> dict:
    """Stage 4: bf16 - fp32 shifts of every estimator of one run per group."""
    start = time.perf_counter()
    n = min(args.precision_n_test, data.x_test.shape[0])
    table = {}
    for cfg, (model, _) in zip(cfgs, trained, strict=True):
        name = group_name(cfg)
        if name not in table:
            e = cfg.eval
            table[name] = estimator_precision.measure(
                model, data.x_test[:n], data.w_test[:n], e.k, e.n_prior, e.eval_seed
            )
    return {
        "decision": estimator_precision.decide(table),
        "limit": estimator_precision.LIMIT,
        "n_test": n,
        "shifts": table,
        "seconds": round(time.perf_counter() - start, 2),
    }


def evaluate(cfgs, folders, trained, data, device, precision, args, budget, report) -> bool:
    """Stage 5: write_evaluation for each run not DONE; False if the budget stopped it."""
    start, per_run = time.perf_counter(), args.eval_estimate
    for cfg, folder, (model, history) in zip(cfgs, folders, trained, strict=True):
        if store.is_done(folder):
            continue
        if not budget.allows(per_run):
            report["stopped"] = f"time budget: evaluation stopped before {cfg.run_id}"
            return False
        t = time.perf_counter()
        matmul = store.read_json(folder / "TRAINED").get("training_matmul", "fp32")
        runs.write_evaluation(
            store.Run(cfg, PROFILE, args.out / "results"), model, data, history, device,
            progress=False, extra=_extra(args, history, matmul), precision=precision,
        )  # fmt: skip
        per_run = time.perf_counter() - t
        report["runs"] = report.get("runs", 0) + 1
        report["s_per_run"] = round(max(per_run, report.get("s_per_run", 0.0)), 2)  # slowest
    report["seconds"] = round(time.perf_counter() - start, 2)
    return True


def write_archive(out: Path, archive: str = ARCHIVE) -> int:
    """OUT/<archive>: the small files of every DONE run and the record of the digit
    judge that read their coherence; returns the run count."""
    base = out / "results"
    done = sorted(f for f in (base / PROFILE / "runs").glob("*/") if store.is_done(f))
    judges = sorted(f for f in (base / PROFILE).glob("digit-judge-*/") if store.is_done(f))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for folder in done:
            for name in RUN_FILES:
                tar.add(folder / name, arcname=str((folder / name).relative_to(base)))
        for folder in judges:
            for name in JUDGE_FILES:
                tar.add(folder / name, arcname=str((folder / name).relative_to(base)))
    store.atomic_write_bytes(out / archive, buffer.getvalue())
    return len(done)


def run(args, entry: dict, budget: Budget) -> list[Path]:
    """Stages 1-6 (module docstring); each stage's report goes into `entry`. Returns the
    selected runs' folders."""
    device = torch.device(args.device)
    overrides = {"epochs": args.epochs, "n_train": args.n_train, "n_test": args.n_test}
    overrides |= {"k": args.k, "n_prior": args.n_prior, "n_judged": args.n_judged}
    cfgs = select(plan(PROFILE, **{k: v for k, v in overrides.items() if v is not None}),
                  args.groups)  # fmt: skip
    cfgs = narrow(cfgs, **run_filter(args))
    committed = set(committed_done(cfgs, args.committed))
    if args.piece == "next":
        entry["piece"] = next_piece(cfgs, committed, args.out / "results")
        print(f"next piece: {entry['piece'] or 'none (every run is done)'}", flush=True)
        cfgs = narrow(cfgs, **PIECES[entry["piece"]]) if entry["piece"] else []
    entry["committed"] = sorted(committed & {c.run_id for c in cfgs})
    cfgs = [c for c in cfgs if c.run_id not in committed]  # made before: not made again
    entry["run_ids"] = [c.run_id for c in cfgs]
    if not cfgs:
        entry["runs"] = entry["cached"] = 0
        return []
    data = load_data(args, device)
    entry["judge"] = install_judge(args.kit, args.out / "results")
    folders = [store.run_dir(PROFILE, c.run_id, args.out / "results") for c in cfgs]
    states = [store.check_run(f) for f in folders]  # damaged markers are removed, named
    todo = [i for i, state in enumerate(states) if state != "done"]
    entry["runs"], entry["cached"] = len(cfgs), len(cfgs) - len(todo)
    if not todo:
        return folders
    mode = args.step_mode if device.type == "cuda" or args.step_mode == "compile" else "eager"
    untrained = [i for i in todo if states[i] == "new"]
    matmul = args.matmul or recorded_matmul()
    if untrained and matmul == "measure":
        if device.type == "cuda":
            entry["matmul_check"] = compare_matmul(data, device, mode, args)
            print(f"matmul check: {json.dumps(entry['matmul_check'])}", flush=True)
            store.write_json(args.out / "matmul_decision.json", entry["matmul_check"])
        matmul = entry.get("matmul_check", {}).get("decision", "fp32")
    entry["training_matmul"] = matmul
    if untrained and mode != "eager" and not args.no_graph_check:
        entry["check"] = check_step_mode([cfgs[i] for i in untrained], data, device, mode)
        print(f"{mode} self-check: {json.dumps(entry['check'])}", flush=True)
        if not entry["check"]["ok"]:
            warnings.warn(f"{mode} disagrees with eager: training eagerly", stacklevel=2)
            mode = "eager"
    trained = {}
    if untrained:
        entry["train"] = report = {"runs": len(untrained), "step_mode": mode}
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        done = train([cfgs[i] for i in untrained], data, device, mode, matmul, args, budget,
                     report)  # fmt: skip
        if device.type == "cuda":
            report["peak_memory_bytes"] = torch.cuda.max_memory_allocated(device)
        if done is None:
            return folders
        trained = dict(zip(untrained, done, strict=True))
    for i in todo:
        if i not in trained:
            run = store.Run(cfgs[i], PROFILE, args.out / "results")
            trained[i] = plan_training.read_trained(run, device)
    pending = [cfgs[i] for i in todo]
    precision = args.estimator_precision
    if precision == "measure":
        entry["estimator_check"] = measure_estimators(pending, [trained[i] for i in todo],
                                                      data, args)  # fmt: skip
        precision = entry["estimator_check"]["decision"]
        print(f"estimator check: {json.dumps(entry['estimator_check'])}", flush=True)
    entry["estimator_precision"] = precision
    entry["evaluate"] = report = {}
    if not evaluate(pending, [folders[i] for i in todo], [trained[i] for i in todo], data,
                    device, precision, args, budget, report):  # fmt: skip
        return folders
    if args.smoke and untrained:  # per-group step times, float32 and TF32 (a CUDA setting)
        kinds = ("fp32", "tf32") if device.type == "cuda" else ("fp32",)
        entry["step_times"] = {
            m: plan_step.compare([cfgs[i] for i in untrained], data, device, mode, m,
                                 SMOKE_STEPS, args.max_group_runs or None)
            for m in kinds
        }  # fmt: skip
    elif args.profile_steps > 0 and untrained and budget.allows(60.0):
        entry["step_profile"] = plan_step.compare(
            [cfgs[i] for i in untrained],
            data,
            device,
            mode,
            matmul,
            args.profile_steps,
            args.max_group_runs or None,
        )
    return folders


class Terminated(Exception):
    """SIGTERM arrived (a time limit, a stopped job): raised so that the call still writes
    what it finished."""


def _terminate(signum, frame):
    raise Terminated(f"signal {signal.Signals(signum).name}")


def record_commit(args) -> str:
    """The commit every file of this call records: --git-commit, else the kit's commit.txt
    (a copy of the tree without .git cannot ask git); set as $JMVAE_GIT_COMMIT, which
    store.git_commit reads where git is unavailable, so probe.json, metrics.json and TRAINED
    agree. Returns it, or '' when neither is given."""
    kit_file = args.kit / gpu_kit.COMMIT
    commit = args.git_commit or (kit_file.read_text().strip() if kit_file.exists() else "")
    if commit:
        os.environ[environment.COMMIT_ENV] = commit
    return commit


def main(argv=None) -> dict:
    """Run the study (or what is left of it); returns this call's timing entry. Whatever
    happens (success, an exception, SIGTERM, the time budget), the call ends by writing the
    archive of every DONE run, timing.json and the export; a run is in the archive only
    once DONE, so a run stopped half-way is never brought back."""
    args = parse(argv)
    record_commit(args)
    start = time.perf_counter()
    budget = Budget(args.time_budget, args.reserve)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda, but torch sees no CUDA device (use --device cpu)")
    entry = {"device": store.device_name(device), "torch": torch.__version__, "smoke": args.smoke,
             "argv": list(argv if argv is not None else sys.argv[1:])}  # fmt: skip
    folders = None
    kept = signal.signal(signal.SIGTERM, _terminate)
    try:
        folders = run(args, entry, budget)
    except BaseException as error:
        entry["error"] = "".join(traceback.format_exception_only(error)).strip()
        print(f"stopped by {entry['error']}: writing what is finished", flush=True)
        raise
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the last writes are not cut short
        try:
            _finish(args, entry, folders, start)
        finally:
            signal.signal(signal.SIGTERM, kept)
    return entry


def _finish(args, entry: dict, folders, start: float) -> None:
    """The archive, timing.json (this call appended) and the export."""
    entry["complete"] = folders is not None and all(store.is_done(f) for f in folders)
    entry["runs_done"] = write_archive(args.out, SMOKE_ARCHIVE if args.smoke else ARCHIVE)
    entry["seconds"] = round(time.perf_counter() - start, 2)
    timing_path = args.out / "timing.json"
    timing = store.read_json(timing_path) if timing_path.exists() else {"calls": []}
    timing["calls"].append(entry)
    store.write_json(timing_path, timing)
    state = "complete" if entry["complete"] else "not complete: see 'stopped' in timing.json"
    print(f"{entry['runs_done']} runs done in {args.out}; {state}", flush=True)
    if args.export is not None:
        args.export.mkdir(parents=True, exist_ok=True)
        for name in (ARCHIVE, SMOKE_ARCHIVE, "timing.json", "log.txt", "matmul_decision.json"):
            if (args.out / name).exists():
                shutil.copyfile(args.out / name, args.export / name)


if __name__ == "__main__":
    main()
