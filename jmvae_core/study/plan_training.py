"""The runs of a plan trained together through the batched step, as a notebook records it.

`jmvae reproduce --batched` (the default on CUDA) hands the paper's MNIST runs that are still
untrained to notebooks/train_plan.ipynb, which calls `train_plan`: fit_batched over all of
them (one group per architecture; on CUDA every group in one captured step), each run's
folder then written as train_run writes it (config.json, history.csv, checkpoint.pt with the
final weights, TRAINED last). The runs are then evaluated one by one, as any trained run.
The executed notebook is kept in <results>/<profile>/plans/<plan id>/, beside the plan's
training state (plan.pt, saved every few epochs, removed when the run folders hold the
weights), and each run's TRAINED names it.

Draws: on a CPU, draws="step" (each run's random stream as train.fit draws it: on one
thread the weights are bitwise fit's); on CUDA, draws="epoch" (an epoch's draws made at its
start, the same distribution, other numbers), which the captured step needs. Runs that
cannot be stacked (JMVAE's successors, the face models, bf16 training) and runs that
train.fit has begun (their checkpoint.pt resumes under fit) are left to the per-run path.
Importable without pandas (the GPU script uses `write_trained` and `read_trained`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

from jmvae_core import data as datasets
from jmvae_core import store
from jmvae_core.config import VARIANTS, RunConfig
from jmvae_core.models import build_model
from jmvae_core.training.batched import fit_batched
from jmvae_core.training.batched_step import GRAPH_MODES
from jmvae_core.training.fit import CHECKPOINT, pick_device

NOTEBOOK = "train_plan"
PLAN_STATE = "plan.pt"
# epochs between saves of the plan's state: a CUDA epoch of the whole plan takes seconds and
# its state about 37 MB per run, a CPU epoch minutes
CHECKPOINT_EVERY = {"cuda": 25}


def batchable(cfg: RunConfig) -> bool:
    """Whether the batched step trains this run as train.fit would (stacked.py's models)."""
    mnist_mlp = cfg.dataset == "mnist" and cfg.model.variant in VARIANTS
    return mnist_mlp and cfg.train.precision == "fp32"


def to_train(runs: list[store.Run]) -> list[store.Run]:
    """The runs a plan should train: batchable, not trained, and not begun by train.fit."""
    return [
        r
        for r in runs
        if batchable(r.cfg) and r.state() == "new" and not (r.folder / CHECKPOINT).exists()
    ]


def plan_id(run_ids: list[str]) -> str:
    """A name for the set of runs trained together (order does not matter)."""
    return hashlib.sha1("\n".join(sorted(run_ids)).encode()).hexdigest()[:10]


def plan_folder(profile: str, run_ids: list[str], root: Path | None = None) -> Path:
    return store.runs_dir(profile, root).parent / "plans" / plan_id(run_ids)


def settings(device, draws: str | None = None, step_mode: str | None = None) -> tuple[str, str]:
    """(draws, step_mode) for a device: on CUDA epoch draws through one captured graph, else
    fit's per-step draws, eagerly."""
    cuda = pick_device(device).type == "cuda"
    return draws or ("epoch" if cuda else "step"), step_mode or ("graph" if cuda else "eager")


def train_plan(
    runs: list[store.Run], device=None, progress: bool = True, draws: str | None = None,
    step_mode: str | None = None, matmul: str = "fp32", checkpoint_every: int | None = None,
) -> list[list[dict]]:  # fmt: skip
    """Train `runs` together (module docstring) and write each run's folder; returns their
    histories. An interrupted call resumes from the plan's state, saved every
    `checkpoint_every` epochs (default: every epoch on a CPU, CHECKPOINT_EVERY on CUDA)."""
    if not runs:
        return []
    device = pick_device(device)
    draws, step_mode = settings(device, draws, step_mode)
    cfgs = [r.cfg for r in runs]
    for cfg in cfgs:
        datasets.check(cfg)
    ids = [r.id for r in runs]
    folder = plan_folder(runs[0].profile, ids, runs[0].root)
    folder.mkdir(parents=True, exist_ok=True)
    started = store.provenance(device)  # the code and threads the training starts with
    for run in runs:
        store.write_json(run.folder / "config.json", {"profile": run.profile, **run.cfg.to_dict()})
    data = datasets.load(cfgs[0], device, progress)  # the plan shares n_train (split_groups)
    every = checkpoint_every or CHECKPOINT_EVERY.get(device.type, 1)
    models, histories = fit_batched(
        cfgs, data, device, progress, draws=draws, step_mode=step_mode, matmul=matmul,
        checkpoint=folder / PLAN_STATE, checkpoint_every=every,
        per_run_adam=False if step_mode in GRAPH_MODES else None,
    )  # fmt: skip
    record = started | {"trained_by": f"plans/{folder.name}/{NOTEBOOK}.ipynb"}
    for run, model, history in zip(runs, models, histories, strict=True):
        how = batched_record(history, matmul, draws, step_mode)
        write_trained(run, model, history, record | how)
    (folder / PLAN_STATE).unlink(missing_ok=True)  # the run folders hold the final weights now
    return histories


def batched_record(history: list[dict], matmul: str, draws: str, step_mode: str) -> dict:
    """What a batched run records beyond train_run's: how it was stepped (as its last history
    row says, where it says: epoch draws record the step mode used), its matmuls."""
    last = {"draws": draws, "step_mode": step_mode} | history[-1]
    batched = {k: last.get(k) for k in ("draws", "step_mode", "batch_runs")}
    return {"batched": batched, "training_matmul": matmul}


def write_trained(run: store.Run, model, history: list[dict], record: dict) -> None:
    """config.json, history.csv, checkpoint.pt (final weights) and TRAINED, as train_run
    leaves a run; `record` is TRAINED's content (provenance and how it was trained)."""
    folder = run.folder
    store.write_json(folder / "config.json", {"profile": run.profile, **run.cfg.to_dict()})
    store.write_text(folder / "history.csv", history_csv(history))
    store.save_torch(folder / CHECKPOINT, {"model": model.state_dict(), "history": history})
    store.write_json(folder / store.TRAINED, record)


def history_csv(history: list[dict]) -> str:
    """The rows as pandas' to_csv(index=False) writes them (floats by repr), without pandas."""
    columns = list(dict.fromkeys(k for row in history for k in row))
    cell = lambda v: repr(v) if isinstance(v, float) else str(v)  # noqa: E731
    lines = [",".join(columns)]
    lines += [",".join(cell(row.get(c, "")) for c in columns) for row in history]
    return "\n".join(lines) + "\n"


def read_trained(run: store.Run, device):
    """(model in eval mode, history) of a run written by write_trained."""
    state = store.load_torch(run.folder / CHECKPOINT, device)
    model = build_model(run.cfg.model).to(device)
    model.load_state_dict(state["model"])
    return model.eval(), state["history"]


def notebook_runs(profile: str, configs: list[dict], run_ids: list[str]) -> list[store.Run]:
    """The runs named by the plan notebook's parameters, checked against their ids."""
    from jmvae_core.config import notebook_config

    if len(configs) != len(run_ids):
        raise ValueError(f"{len(configs)} configs for {len(run_ids)} run ids")
    pairs = zip(configs, run_ids, strict=True)
    return [store.Run(notebook_config(profile, c, i), profile) for c, i in pairs]


def run_plan_notebook(
    runs: list[store.Run], device, cwd: Path, env=None, on_wait=None
) -> Path | None:
    """notebooks/train_plan.ipynb executed for `runs` into their plan folder, under every
    run's lock (taken in id order, so two such calls never wait on each other crosswise);
    runs trained meanwhile by another process are left out. -> the executed notebook, or
    None when nothing was left to train."""
    from jmvae_core.study.execution import execute  # papermill: only for notebook runs

    with contextlib.ExitStack() as locks:
        for run in sorted(runs, key=lambda r: r.id):
            locks.enter_context(store.run_lock(run.folder, on_wait=on_wait))
        runs = to_train(runs)  # what the lock holders before us left to do
        if not runs:
            return None
        ids = [r.id for r in runs]
        output = plan_folder(runs[0].profile, ids, runs[0].root) / f"{NOTEBOOK}.ipynb"
        params = {
            "profile": runs[0].profile,
            "configs": [r.cfg.to_dict() for r in runs],
            "run_ids": ids,
            "device": device,
        }
        # plain literals for papermill: tuples become lists
        execute(NOTEBOOK, output, json.loads(json.dumps(params)), cwd, env=env)
        return output
