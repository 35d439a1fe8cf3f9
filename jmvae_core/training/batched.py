"""Many MNIST runs trained as one batched computation (the book's Performance chapter).

R runs that differ only in seed and alpha share every shape: their parameters are stacked
along a leading run dimension and each layer is one batched matmul (a group; the stacked
model is jmvae_core.stacked). Runs of
several architectures (a whole config.plan) form one group per architecture and train
together under one schedule. Per run, `fit_batched` reproduces `train.fit` (the book's
protocol): same initial weights, random draws in the same order, same warm-up, Adam and
clipping, through the same objective (the model's declaration, model.spec). On one CPU
thread the result is bitwise fit's; elsewhere (several threads, CUDA) batched kernels may
round differently from the single-run ones.

That is draws="step", where every step draws from each run's generator in a Python loop.
draws="epoch" draws a whole epoch at its start instead (jmvae_core.batched_step): the same
distribution, other numbers, and a step free of Python work that advances every group at
once and can be compiled (step_mode="compile") or captured as one CUDA graph
(step_mode="graph"). In that mode a run is bitwise the same whether it trains alone, in its
group or beside other groups, on one CPU thread.

Shapes: data and activations are (R, B, ...); per-run loss terms are (R,).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from jmvae_core.config import ConfigError, RunConfig, architecture
from jmvae_core.data.mnist import MNIST, check_data
from jmvae_core.models import build_model
from jmvae_core.training.batched_step import (
    EpochInputs,
    check_modes,
    make_step,
    matmul_precision,
    resume_group,
    save_group,
)
from jmvae_core.training.fit import TrainingDiverged, pick_device, warmup_scales
from jmvae_core.training.stacked import (
    _check_same,
    clip_gradients_per_run,
    stack_models,
    unstack,
)


def split_groups(cfgs: list[RunConfig], max_runs: int | None = None) -> list[list[int]]:
    """Indices of `cfgs` per architecture group (equal model fields but alpha), in order of
    first appearance; with `max_runs`, a larger group is cut into parts of at most that many
    runs (on CUDA, more and shorter parallel branches). All runs share one schedule: a
    training field other than the seed that differs raises ConfigError naming it."""
    _check_same([{"train": vars(c.train)} for c in cfgs], "only the seed")
    groups: dict[tuple, list[int]] = {}
    for i, cfg in enumerate(cfgs):
        groups.setdefault(architecture(cfg), []).append(i)
    size = max_runs or len(cfgs)
    return [idx[j : j + size] for idx in groups.values() for j in range(0, len(idx), size)]


class Group:
    """One architecture's R runs in training: stacked model, Adam, per-run generators.

    Initial weights are drawn run by run exactly as train.fit draws them (the book's protocol)."""

    def __init__(self, cfgs: list[RunConfig], device: torch.device, per_run: bool):
        _check_same([{"model": vars(c.model), "train": vars(c.train)} for c in cfgs])
        singles = []
        for cfg in cfgs:
            torch.manual_seed(cfg.train.seed)
            singles.append(build_model(cfg.model))
        self.cfgs = cfgs
        self.model = stack_models(singles).to(device)
        params = list(self.model.parameters())
        self.optimizer, self.attach_grads = _adam(params, cfgs[0].train, device, per_run)
        self.gens = [torch.Generator(device=device).manual_seed(c.train.seed) for c in cfgs]
        self.loss_fn = self.model.spec.objective
        self.inputs: EpochInputs | None = None  # draws="epoch" only

    def clip(self) -> None:
        """train.clip_gradients for each run of the group (the book's protocol)."""
        tc = self.cfgs[0].train
        clip_gradients_per_run(list(self.model.parameters()), tc.clip_norm, tc.clip_value)


def _draw(grey: torch.Tensor, gens: list[torch.Generator], latent: int, device):
    """Per-run binarised images (R, B, X) and noise (R, B, D), each from its run's generator.

    A loop over runs, because every run must use its own generator in fit's order (bernoulli,
    then the objective's randn); with randperm, it is the obstacle to CUDA-graph capture.
    """
    xs, eps = [], []
    for r, g in enumerate(gens):
        xs.append(torch.bernoulli(grey[r], generator=g))
        eps.append(torch.randn((grey.shape[1], latent), generator=g, device=device))
    return torch.stack(xs), torch.stack(eps)


def _run_epoch(group: Group, data: MNIST, epoch: int) -> list[dict]:
    """One epoch of train._run_epoch for all runs at once: one history row per run."""
    model, cfgs, gens = group.model, group.cfgs, group.gens
    tc, device = cfgs[0].train, model.alpha.device
    beta, alpha_scale = warmup_scales(tc, epoch)
    alpha = _alphas(cfgs, alpha_scale, device)
    n, bs, latent = data.x_train.shape[0], tc.batch_size, model.cfg.latent_dim
    orders = torch.stack([torch.randperm(n, generator=g, device=data.x_train.device) for g in gens])
    sums: dict[str, torch.Tensor] = {}
    n_batches = n // bs  # the last partial batch is dropped, as fit does
    for b in range(n_batches):
        idx = orders[:, b * bs : (b + 1) * bs]
        x, eps = _draw(data.x_train[idx], gens, latent, device)
        terms = group.loss_fn(model, x, data.w_train[idx], eps, beta, alpha)
        model.zero_grad(set_to_none=True)
        terms["loss"].sum().backward()
        group.clip()
        group.attach_grads()  # per-run Adam: hand each view its slice of the new gradient
        group.optimizer.step()
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value.detach()
    per_run = {name: total.tolist() for name, total in sums.items()}  # one sync per epoch
    return _rows(cfgs, epoch, beta, alpha_scale, per_run, n_batches)


def _run_drawn_epoch(step, groups: list[Group], data: MNIST, epoch: int) -> list[list[dict]]:
    """One epoch with draws="epoch" for every group: draw it, then `step` n_batches times,
    each call one update of every group (batched_step.make_step). Rows per group."""
    beta, alpha_scale = warmup_scales(groups[0].cfgs[0].train, epoch)
    for g in groups:
        g.inputs.new_epoch(data, g.gens, beta, _alphas(g.cfgs, alpha_scale, g.inputs.alpha.device))
    n_batches = groups[0].inputs.n_batches
    for _ in range(n_batches):
        step()
    out = []
    for g in groups:
        rows = _rows(g.cfgs, epoch, beta, alpha_scale, g.inputs.read_sums(), n_batches)
        out.append([{**row, "draws": "epoch", "step_mode": step.mode} for row in rows])
    return out


def _alphas(cfgs, alpha_scale: float, device) -> torch.Tensor:
    """alpha * scale per run (R,): in double, then float32, the rounding of fit's product."""
    return torch.tensor([c.model.alpha * alpha_scale for c in cfgs], device=device)


def _rows(cfgs, epoch, beta, alpha_scale, per_run: dict, n_batches: int) -> list[dict]:
    """Per-run history rows of mean loss terms; TrainingDiverged on a non-finite term."""
    rows = []
    for r, cfg in enumerate(cfgs):
        row = {name: values[r] / n_batches for name, values in per_run.items()}
        bad = [name for name, value in row.items() if not math.isfinite(value)]
        if bad:
            raise TrainingDiverged(f"{cfg.run_id} epoch {epoch + 1}: non-finite {bad}: {row}")
        rows.append({"epoch": epoch + 1, "beta": beta, "alpha_scale": alpha_scale, **row})
    return rows


def _adam(params: list[torch.Tensor], tc, device, per_run: bool):
    """fit's Adam over stacked tensors (R, ...): returns (optimizer, attach_grads).

    Adam is element-wise, so one optimiser over stacked tensors is per-run exact maths, but the
    fused CPU kernel rounds a tensor's shorter-than-a-vector tail differently: fit's 10-element
    bias is all tail, its slice of a stacked bias is not. With `per_run` Adam steps per-run
    views, each exactly a tensor fit steps (cheap on a CPU, where the matmuls dominate).
    On CUDA it is capturable (its step counters live on the device), which a CUDA graph needs;
    the fused kernel's arithmetic is the same either way.
    """
    kw = {"lr": tc.lr, "betas": tc.betas, "eps": tc.adam_eps}
    kw["fused"] = device.type in ("cpu", "cuda") or None  # as fit
    kw["capturable"] = device.type == "cuda"
    if not per_run:
        return torch.optim.Adam(params, **kw), lambda: None
    with torch.no_grad():  # views that share the stacked storage; Adam updates them in place
        views = [(p, r, p[r]) for p in params for r in range(p.shape[0])]

    def attach_grads():
        for p, r, view in views:
            view.grad = p.grad[r]

    return torch.optim.Adam([v for _, _, v in views], **kw), attach_grads


def fit_batched(
    cfgs: list[RunConfig],
    data: MNIST,
    device=None,
    progress=True,
    epochs=None,
    per_run_adam: bool | None = None,
    draws: str = "step",
    step_mode: str = "eager",
    checkpoint: Path | None = None,
    checkpoint_every: int = 1,
    on_epoch_end: Callable[[list[dict]], bool | None] | None = None,
    matmul: str = "fp32",
    max_group_runs: int | None = None,
):
    """Train runs together, each as train.fit alone (the book's protocol); runs of several
    architectures (e.g. a whole config.plan) form one group per architecture (split_groups).

    `epochs` (default: the configs' epochs) runs only the first epochs of the schedule.
    `per_run_adam` (default: on a CPU) steps per-run views, bitwise like fit (see _adam).
    `draws`: "step" reproduces fit's random stream, group after group; "epoch" draws each
    epoch at its start (batched_step) and advances every group in one step (on CUDA each
    group on its own stream), which `step_mode` "compile" and "graph" (CUDA: one graph for
    all groups) need. `matmul` "tf32" lets CUDA float32 matmuls use TF32 tensor cores.
    `max_group_runs` cuts larger groups into parts (split_groups); each run's result does
    not depend on its group's size (bitwise on one CPU thread).
    With `checkpoint` the state of every group is saved there atomically every
    `checkpoint_every` epochs and at the end, and a later call resumes from it exactly.
    `on_epoch_end(rows)` sees each epoch's history rows (in `cfgs` order); a true return
    stops training after a checkpoint (histories then shorter). Returns (single-run models in
    eval mode, histories), in `cfgs` order; a row's time_s is the epoch's wall time divided by
    the number of runs (the run's share) and batch_runs is that number.
    """
    for cfg in cfgs:
        check_data(cfg, data)
    members = split_groups(cfgs, max_group_runs)
    if cfgs[0].train.precision != "fp32":  # the batched step has no autocast (yet)
        raise ConfigError(
            f"precision={cfgs[0].train.precision!r}: batched training runs in fp32 only"
        )
    device = pick_device(device)
    per_run = device.type == "cpu" if per_run_adam is None else per_run_adam
    check_modes(draws, step_mode, device, per_run)
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # as fit: subnormal Adam moments slow every step
    with matmul_precision(matmul):  # the caller's setting is restored afterwards
        groups = [Group([cfgs[i] for i in idx], device, per_run) for idx in members]
        histories: list[list[dict]] = [[] for _ in cfgs]
        if checkpoint is not None and Path(checkpoint).exists():
            histories = resume_group(Path(checkpoint), groups, cfgs, draws, per_run)
        run_epoch = _epoch_runner(groups, members, data, draws, step_mode)
        for g in groups:
            g.model.train()
        n_epochs = cfgs[0].train.epochs if epochs is None else epochs
        done = len(histories[0])
        bar = tqdm(range(done, n_epochs), desc=f"{len(cfgs)} runs", disable=not progress)
        for epoch in bar:
            start = time.perf_counter()
            rows = run_epoch(epoch)
            share = round((time.perf_counter() - start) / len(cfgs), 4)
            extra = {"time_s": share, "batch_runs": len(cfgs)}
            extra |= {"matmul": matmul} if matmul != "fp32" else {}  # fp32 rows read as before
            for history, row in zip(histories, rows, strict=True):
                history.append({**row, **extra})
            stop = on_epoch_end is not None and bool(on_epoch_end([h[-1] for h in histories]))
            due = (epoch + 1) % checkpoint_every == 0 or epoch + 1 == n_epochs or stop
            if checkpoint is not None and due:
                save_group(Path(checkpoint), groups, histories, cfgs, draws, per_run)
            if stop:
                break
        models: list = [None] * len(cfgs)
        for g, idx in zip(groups, members, strict=True):
            for r, i in enumerate(idx):
                models[i] = unstack(g.model, r).eval()
        return models, histories


def _epoch_runner(groups: list[Group], members, data, draws, step_mode):
    """epoch -> that epoch's rows in `cfgs` order, with fit's per-step draws (group after
    group) or batched_step's epoch draws (every group in each step)."""
    if draws == "step":
        per_group = lambda epoch: [_run_epoch(g, data, epoch) for g in groups]  # noqa: E731
    else:
        for g in groups:
            tc = g.cfgs[0].train
            g.inputs = EpochInputs(data, len(g.cfgs), tc.batch_size, g.model.cfg.latent_dim)
        step = make_step(step_mode, groups)
        per_group = lambda epoch: _run_drawn_epoch(step, groups, data, epoch)  # noqa: E731

    def run_epoch(epoch: int) -> list[dict]:
        rows: list = [None] * sum(len(idx) for idx in members)
        for idx, group_rows in zip(members, per_group(epoch), strict=True):
            for i, row in zip(idx, group_rows, strict=True):
                rows[i] = row
        return rows

    return run_epoch
