"""One training step of stacked runs as a function of tensors only (the book's Performance chapter).

`batched.fit_batched` with draws="epoch" trains through this module. Every random number of
an epoch is drawn at its start (`EpochInputs.new_epoch`), so a step is the same sequence of
kernels on the same tensors every time: it indexes the pre-drawn batch with a step-counter
tensor, runs the update of the book's protocol (loss, backward, per-run clipping, Adam) and
adds its loss terms to device-side sums. Nothing in it reads a value back to Python. One
step advances every architecture group of the runs (`Together`: on CUDA a stream per group,
so that the groups' kernels overlap). That makes it
 - "eager": run as written;
 - "compile": the forward pass and loss compiled by torch.compile (inductor), whose backward
   AOTAutograd compiles too; clipping and Adam stay eager;
 - "graph": captured once as a CUDA graph and replayed per step (CUDA only). The scalars that
   change between epochs (beta, alpha, the step counter) are device tensors updated in place,
   and the draws are refilled in place, so the captured graph reads the new values. All
   groups are captured in one graph, their streams as parallel branches;
 - "compile-graph": the compiled loss of "compile", captured as in "graph".

Epoch draws give the same distribution as train.fit's per-step draws (a permutation, Bernoulli
re-binarisation, one noise sample per example) but not the same numbers: results of this mode
are not bitwise fit's. History rows of such runs say so ("draws": "epoch", and "step_mode").

Memory: the draws of an epoch are held at once, about R x n x (X bytes + 4 (W + D) bytes):
about 1 GB for 15 runs of the 60,000 MNIST images. Also here: the checks of a draws / step-mode
combination and the group checkpoint of fit_batched (save_group / resume_group).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from jmvae_core import store

DRAWS = ("step", "epoch")  # "step": train.fit's stream, bitwise; "epoch": drawn per epoch
STEP_MODES = ("eager", "compile", "graph", "compile-graph")
GRAPH_MODES = ("graph", "compile-graph")  # CUDA graphs; "compile-": with a compiled loss
MATMULS = ("fp32", "tf32")  # CUDA float32 matmuls: exact, or on TF32 tensor cores
GRAPH_WARMUP_STEPS = 3  # eager steps on a side stream before the capture (CUDA-graph recipe)


class EpochInputs:
    """Per-epoch draws of R runs and the step's scalars, in fixed buffers (the book's protocol).

    Per run r, from its own generator and in this order: the permutation of the n training
    images (randperm), uniforms U (n_batches, B, X) for the re-binarisation x = (U < grey),
    which is torch.bernoulli's distribution, and the noise eps (n_batches, B, D). Buffers:
    x (R, n_batches, B, X) bool, w (R, n_batches, B, W), eps (R, n_batches, B, D); step (1,)
    the counter, beta () and alpha (R,) the warm-up-scaled weights, sums (terms, R) the
    running sums of the loss terms named in `names`.
    """

    def __init__(self, data, runs: int, batch_size: int, latent: int):
        n, x_dim = data.x_train.shape
        self.n_batches = n // batch_size  # the last partial batch is dropped, as fit does
        shape = (runs, self.n_batches, batch_size)
        device, dtype = data.x_train.device, data.x_train.dtype
        self.x = torch.zeros((*shape, x_dim), dtype=torch.bool, device=device)
        self.w = torch.zeros((*shape, data.w_train.shape[1]), dtype=dtype, device=device)
        self.eps = torch.zeros((*shape, latent), dtype=dtype, device=device)
        self.step = torch.zeros(1, dtype=torch.long, device=device)
        self.beta = torch.zeros((), dtype=dtype, device=device)
        self.alpha = torch.zeros(runs, dtype=dtype, device=device)
        self.names: list[str] = []
        self.sums: torch.Tensor | None = None  # made by the first step (always eager)

    @torch.no_grad()
    def new_epoch(self, data, gens: list[torch.Generator], beta: float, alpha: torch.Tensor):
        """Draw the epoch run by run into the buffers; set beta, alpha; zero step and sums."""
        used = self.n_batches * self.x.shape[2]
        for r, g in enumerate(gens):
            order = torch.randperm(data.x_train.shape[0], generator=g, device=g.device)[:used]
            grey = data.x_train[order].view(self.x.shape[1:])
            uniform = torch.rand(grey.shape, generator=g, device=g.device, dtype=grey.dtype)
            torch.lt(uniform, grey, out=self.x[r])
            self.w[r].copy_(data.w_train[order].view(self.w.shape[1:]))
            torch.randn(self.eps.shape[1:], generator=g, out=self.eps[r])
        self.beta.fill_(beta)
        self.alpha.copy_(alpha)
        self.step.zero_()
        if self.sums is not None:
            self.sums.zero_()

    def batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batch number `step` of every run: x (R, B, X) float, w (R, B, W), eps (R, B, D)."""
        pick = lambda t: t.index_select(1, self.step).squeeze(1)  # noqa: E731
        return pick(self.x).to(self.eps.dtype), pick(self.w), pick(self.eps)

    def read_sums(self) -> dict[str, list[float]]:
        """Per-run sums of every loss term over the epoch's steps: the epoch's one sync."""
        return dict(zip(self.names, self.sums.tolist(), strict=True))


def train_step(model, optimizer, attach_grads, inputs: EpochInputs, loss_fn, clip) -> None:
    """One update (the book's protocol) of all runs from `inputs`' batch; advances its counter.

    `loss_fn(model, x, w, eps, beta, alpha)` returns per-run terms (R,) with "loss";
    `clip()` clips each run's gradients of `model`. No value is read back to the host.
    """
    x, w, eps = inputs.batch()
    terms = loss_fn(model, x, w, eps, inputs.beta, inputs.alpha)
    model.zero_grad(set_to_none=True)
    terms["loss"].sum().backward()  # the runs' parameters are disjoint: per-run gradients
    clip()
    attach_grads()
    optimizer.step()
    with torch.no_grad():
        values = torch.stack(list(terms.values()))  # one kernel for every term's sum
        if inputs.sums is None:  # first step only, always eager (see GraphStep)
            inputs.names, inputs.sums = list(terms), torch.zeros_like(values)
        inputs.sums.add_(values)
        inputs.step.add_(1)


def compiled(loss_fn):
    """torch.compile of the forward pass and loss (its backward is compiled with it)."""
    # tensors for beta and alpha, fixed shapes: one compilation serves every epoch
    return torch.compile(loss_fn, fullgraph=True, dynamic=False)


class Together:
    """One call = one step of every group. On CUDA each group runs on a stream of its own,
    forked from the caller's stream and joined back, so that the groups' kernels can overlap
    (and, captured, form parallel branches of one CUDA graph); elsewhere one after another."""

    def __init__(self, steps: list[Callable[[], None]], device: torch.device):
        self.steps = steps
        self.streams = None
        if device.type == "cuda" and len(steps) > 1:
            self.streams = [torch.cuda.Stream(device) for _ in steps]

    def __call__(self) -> None:
        if self.streams is None:
            for step in self.steps:
                step()
            return
        here = torch.cuda.current_stream()
        for stream, step in zip(self.streams, self.steps, strict=True):
            stream.wait_stream(here)
            with torch.cuda.stream(stream):
                step()
        for stream in self.streams:
            here.wait_stream(stream)


class GraphStep:
    """Run `step` as one CUDA graph: eager warm-up steps, one capture, then a replay per call.

    The first GRAPH_WARMUP_STEPS calls are genuine training steps run eagerly on a side
    stream (lazy CUDA initialisation must not happen during capture). The capture records the
    next step without running it, so that call then replays it. The step must keep every
    tensor it reads or writes at a fixed address: parameters and Adam state are updated in
    place (capturable Adam), the inputs are refilled in place. If capture fails, training
    goes on eagerly with a warning; `mode` says which is in use.
    """

    def __init__(self, step: Callable[[], None], models: list[torch.nn.Module], mode="graph"):
        self.step, self.models = step, models
        self.mode, self.calls, self.graph = mode, 0, None
        self.stream = torch.cuda.Stream()

    def __call__(self) -> None:
        if self.graph is not None:
            self.graph.replay()
        elif self.mode not in GRAPH_MODES:
            self.step()
        elif self.calls < GRAPH_WARMUP_STEPS:
            self.calls += 1
            self.stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(self.stream):
                self.step()
            torch.cuda.current_stream().wait_stream(self.stream)
        else:
            self._capture()
            self()

    def _capture(self) -> None:
        graph = torch.cuda.CUDAGraph()
        for model in self.models:
            model.zero_grad(set_to_none=True)  # gradients are allocated inside the graph
        try:
            with torch.cuda.graph(graph):
                self.step()
        except Exception as error:  # any failure: keep training, eagerly, and say so
            torch.cuda.synchronize()
            self.mode = "eager"
            warnings.warn(
                f"CUDA-graph capture of the training step failed ({type(error).__name__}: "
                f"{error}); training continues eagerly, step by step",
                RuntimeWarning,
                stacklevel=3,
            )
            return
        self.graph = graph


class EagerStep:
    """Run `step` as written ("eager") or with a compiled loss ("compile"); `mode` names it."""

    def __init__(self, step: Callable[[], None], mode: str):
        self.step, self.mode = step, mode

    def __call__(self) -> None:
        self.step()


def make_step(mode: str, groups):
    """A callable running one train_step of every group's next batch (each group: model,
    optimizer, attach_grads, inputs, loss_fn, clip, as batched.Group), as `mode` asks.

    The runner's `mode` says what runs ("eager" after a failed graph capture).
    """
    if mode not in STEP_MODES:
        raise ValueError(f"step_mode={mode!r} is unknown; allowed: {', '.join(STEP_MODES)}")
    steps = []
    for g in groups:
        loss_fn = compiled(g.loss_fn) if mode.startswith("compile") else g.loss_fn
        args = (g.model, g.optimizer, g.attach_grads, g.inputs, loss_fn, g.clip)
        steps.append(functools.partial(train_step, *args))
    device = groups[0].inputs.step.device
    step = Together(steps, device)
    if mode not in GRAPH_MODES:
        return EagerStep(step, mode)
    check_graph_device(device, mode)
    return GraphStep(step, [g.model for g in groups], mode)


@contextlib.contextmanager
def matmul_precision(matmul: str):
    """CUDA float32 matmuls as asked ("fp32" exact, "tf32" on TF32 tensor cores) inside the
    block; the previous setting is restored after it. No effect on a CPU."""
    if matmul not in MATMULS:
        raise ValueError(f"matmul={matmul!r} is unknown; allowed: {', '.join(MATMULS)}")
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = matmul == "tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def check_graph_device(device: torch.device, mode: str = "graph") -> None:
    """Raise a clear ValueError unless CUDA graphs can run on `device`."""
    if device.type != "cuda":
        raise ValueError(
            f"step_mode={mode!r} captures a CUDA graph and needs a CUDA device, not "
            f"{device.type!r}; use step_mode='eager' or 'compile' there"
        )


def check_modes(draws: str, step_mode: str, device, per_run: bool) -> None:
    """Raise ValueError for a draws / step_mode / device / Adam combination that cannot run."""
    if draws not in DRAWS:
        raise ValueError(f"draws={draws!r} is unknown; allowed: {', '.join(DRAWS)}")
    if step_mode not in STEP_MODES:
        raise ValueError(f"step_mode={step_mode!r} is unknown; allowed: {', '.join(STEP_MODES)}")
    if step_mode != "eager" and draws != "epoch":
        raise ValueError(
            f"step_mode={step_mode!r} needs draws='epoch': per-step draws loop over the runs' "
            "generators in Python at every step"
        )
    if step_mode in GRAPH_MODES:
        check_graph_device(device, step_mode)
        if per_run:
            raise ValueError(f"step_mode={step_mode!r} steps one stacked Adam: per_run_adam=False")


def save_group(path: Path, groups, histories, cfgs, draws, per_run) -> None:
    """The training state of every group (batched.Group), written atomically."""
    store.save_torch(
        path,
        {
            "groups": [
                {
                    "model": g.model.state_dict(),
                    "optimizer": g.optimizer.state_dict(),
                    "generators": [gen.get_state() for gen in g.gens],
                }
                for g in groups
            ],
            "histories": histories,
            "run_ids": [c.run_id for c in cfgs],
            "draws": draws,
            "per_run_adam": per_run,
        },
    )


def resume_group(path: Path, groups, cfgs, draws, per_run) -> list[list[dict]]:
    """Load a save_group checkpoint of the same runs and modes into place; return histories."""
    device = groups[0].model.alpha.device
    state = store.load_torch(path, device)
    wanted = {"run_ids": [c.run_id for c in cfgs], "draws": draws, "per_run_adam": per_run}
    for key, value in wanted.items():
        if state.get(key) != value:
            raise ValueError(
                f"checkpoint {path} was written with {key}={state.get(key)!r}, not {value!r}: "
                "resume with the same runs and modes, or remove the file to start afresh"
            )
    for g, saved in zip(groups, state["groups"], strict=True):
        g.model.load_state_dict(saved["model"])  # in place: Adam's per-run views stay valid
        g.optimizer.load_state_dict(saved["optimizer"])
        for gen, gen_state in zip(g.gens, saved["generators"], strict=True):
            gen.set_state(gen_state.to("cpu"))
    return state["histories"]


# history fields that are not loss terms
NOT_TERMS = {"epoch", "beta", "alpha_scale", "time_s", "batch_runs", "draws", "step_mode", "matmul"}


def differences(first, second) -> tuple[float, float]:
    """(max relative loss-term difference, max absolute weight difference) between two
    fit_batched results, each (models, histories), run by run. Rows must have the same fields."""
    loss_rel, param_abs = 0.0, 0.0
    for model_a, hist_a, model_b, hist_b in zip(*first, *second, strict=True):
        for row_a, row_b in zip(hist_a, hist_b, strict=True):
            if row_a.keys() != row_b.keys():
                raise ValueError(f"history fields differ: {sorted(row_a)} vs {sorted(row_b)}")
            for k in row_a.keys() - NOT_TERMS:
                loss_rel = max(loss_rel, abs(row_a[k] - row_b[k]) / max(abs(row_a[k]), 1e-3))
        params_b = dict(model_b.named_parameters())
        for name, p in model_a.named_parameters():
            param_abs = max(param_abs, (p - params_b[name]).abs().max().item())
    return loss_rel, param_abs
