"""fit(): the training loop (book/model.md) with warm-up, clipping, checkpoints and exact resume."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from jmvae_core import store
from jmvae_core.config import ConfigError, RunConfig, TrainConfig
from jmvae_core.data import DATASETS
from jmvae_core.data.mnist import MNIST, check_data
from jmvae_core.models import build_model
from jmvae_core.nn.networks import draw_noise
from jmvae_core.training.gan import gan_step, parameter_groups

CHECKPOINT = store.CHECKPOINT


class TrainingDiverged(FloatingPointError):
    """A loss term became NaN or infinite; the message names the epoch and the term."""


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device, else the best available one: cuda, then mps, then cpu."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def check_device(device: str | torch.device | None) -> torch.device:
    """pick_device, with a ConfigError naming the device unless it is known and present here
    (checked before any run starts, so that nothing is written for runs that cannot start)."""
    try:
        chosen = pick_device(device)
    except RuntimeError as error:  # torch.device("gpu"): an unknown device string
        raise ConfigError(f"--device {device!r} is not a device torch knows ({error})") from None
    present = {
        "cpu": lambda: True,
        "cuda": lambda: (
            torch.cuda.is_available() and (chosen.index or 0) < torch.cuda.device_count()
        ),
        "mps": lambda: (
            getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
        ),
    }
    if chosen.type not in present or not present[chosen.type]():
        raise ConfigError(
            f"--device {device}: torch sees no such device on this machine; use --device cpu "
            "(or leave it out for the best available)"
        )
    return chosen


def warmup_scales(tc: TrainConfig, epoch: int) -> tuple[float, float]:
    """(beta, alpha_scale) for a 0-based epoch: linear from 1/E_w to 1 over E_w epochs."""
    beta = 1.0 if tc.warmup_epochs == 0 else min(1.0, (epoch + 1) / tc.warmup_epochs)
    return beta, (beta if tc.warmup_alpha else 1.0)


def clip_gradients(params: list[torch.Tensor], tc: TrainConfig) -> None:
    """As the authors' code: rescale to global norm <= clip_norm, then clamp to +-clip_value.

    The arithmetic of torch.nn.utils.clip_grad_norm_ followed by clip_grad_value_, less the
    passes over the gradients that cannot change a value (on the CPU, where reading a norm back
    costs nothing): the rescaling when the factor is exactly 1, and the clamp of every tensor
    whose norm after rescaling is below 0.99 clip_value (none of its elements can exceed it).
    With the norm clip always active in JMVAE-kl training (benchmarks/step_speed.py: a gradient
    norm of 23-256 over 800 steps from the initial weights) the clamp is needed for 1-6 of its
    38 tensors. Bitwise equal to the two torch calls
    (tests/test_train.py, over 60 steps); NaN gradients are rescaled and clamped as there.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    if grads[0].device.type != "cpu" or len({(g.device, g.dtype) for g in grads}) > 1:
        # a GPU would wait for each value read back: torch's two calls, which read none
        if tc.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(params, tc.clip_norm)
        if tc.clip_value is not None:
            torch.nn.utils.clip_grad_value_(params, tc.clip_value)
        return
    norms = torch.stack(torch._foreach_norm(grads))  # clip_grad_norm_'s per-tensor norms
    if tc.clip_norm is not None:
        total = torch.linalg.vector_norm(norms)
        coef = torch.clamp(tc.clip_norm / (total + 1e-6), max=1.0)  # its factor, as it computes it
        if not coef.item() >= 1.0:  # a factor of exactly 1 leaves every value as it is
            torch._foreach_mul_(grads, coef)
            norms = norms * coef  # an upper bound of each rescaled tensor's norm, to rounding
    if tc.clip_value is not None:
        limit = 0.99 * tc.clip_value  # the margin covers the rounding of a norm
        big = [g for g, norm in zip(grads, norms.tolist(), strict=True) if not norm < limit]
        if big:
            torch._foreach_clamp_min_(big, -tc.clip_value)
            torch._foreach_clamp_max_(big, tc.clip_value)


def make_optimizers(model, tc: TrainConfig, device) -> dict[str, torch.optim.Adam]:
    """One Adam over every parameter; for a GAN variant one per update of book/celeba.md."""
    # the fused kernel runs Adam's update in one pass per tensor (the same algorithm)
    fused = device.type in ("cpu", "cuda") or None
    groups = parameter_groups(model) if model.spec.adversarial else None
    groups = groups or {"all": list(model.parameters())}
    return {
        name: torch.optim.Adam(params, lr=tc.lr, betas=tc.betas, eps=tc.adam_eps, fused=fused)
        for name, params in groups.items()
    }


def autocast(tc: TrainConfig, device: torch.device):
    """bfloat16 matmuls for TrainConfig.precision "bf16", else nothing.

    Autocast runs matmuls and linear layers in bfloat16 and keeps reductions, softplus and
    log-softmax in float32; the weights, their gradients and Adam stay float32.
    """
    if tc.precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def _step(model, optimizers, x, w, generator, beta, alpha_scale, tc) -> dict:
    """One batch: a single update, or the GAN's three (jmvae_core.gan)."""
    clip = lambda params: clip_gradients(params, tc)  # noqa: E731
    if "all" not in optimizers:
        return gan_step(model, optimizers, x, w, generator, beta, alpha_scale, clip)
    with autocast(tc, x.device):
        eps = draw_noise(generator, x, model.spec.noise_dim(model.cfg.latent_dim))
        alpha = model.cfg.alpha * alpha_scale
        terms = model.spec.objective(model, x, w, eps, beta, alpha)
    optimizers["all"].zero_grad(set_to_none=True)
    terms["loss"].backward()
    clip(optimizers["all"].param_groups[0]["params"])
    optimizers["all"].step()
    return terms


def _run_epoch(model, optimizers, data: MNIST, cfg: RunConfig, epoch, generator) -> dict:
    tc = cfg.train
    beta, alpha_scale = warmup_scales(tc, epoch)
    binarize = DATASETS[cfg.dataset].binarize  # face images are real-valued (standardised)
    n = data.x_train.shape[0]
    order = torch.randperm(n, generator=generator, device=data.x_train.device)
    sums: dict[str, torch.Tensor] = {}
    n_batches = n // tc.batch_size  # the last partial batch is dropped
    for b in range(n_batches):
        idx = order[b * tc.batch_size : (b + 1) * tc.batch_size]
        x = data.x_train[idx]
        if binarize:
            x = torch.bernoulli(x, generator=generator)  # re-binarised every epoch
        terms = _step(model, optimizers, x, data.w_train[idx], generator, beta, alpha_scale, tc)
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value.detach()
    row = {name: float(total) / n_batches for name, total in sums.items()}
    bad = [name for name, value in row.items() if not math.isfinite(value)]
    if bad:
        raise TrainingDiverged(f"epoch {epoch + 1}: non-finite loss term(s) {bad}: {row}")
    return {"epoch": epoch + 1, "beta": beta, "alpha_scale": alpha_scale, **row}


def fit(
    cfg: RunConfig,
    data: MNIST,
    run_dir: Path | None = None,
    device=None,
    progress: bool = True,
    checkpoint_every: int = 1,
    on_epoch_end: Callable[[dict], None] | None = None,
):
    """Train one run; with `run_dir`, checkpoint atomically and resume from the last checkpoint.

    Returns (model, history: list of per-epoch dicts of mean loss terms and wall time).
    """
    check_data(cfg, data)
    device = pick_device(device)
    if device.type == "cpu":
        # Adam's moments fill with subnormal floats after an epoch and slow every step;
        # flushing them to zero changes results only below float32 noise.
        torch.set_flush_denormal(True)
    tc = cfg.train
    torch.manual_seed(tc.seed)  # initial weights: drawn on the CPU, identical on every device
    model = build_model(cfg.model).to(device)
    optimizers = make_optimizers(model, tc, device)
    generator = torch.Generator(device=device).manual_seed(tc.seed)
    history: list[dict] = []
    ckpt = Path(run_dir) / CHECKPOINT if run_dir is not None else None
    if ckpt is not None and ckpt.exists():
        state = store.load_torch(ckpt, device)
        model.load_state_dict(state["model"])
        for name, opt in optimizers.items():
            # single-optimizer checkpoints keep the key "optimizer" they always had
            opt.load_state_dict(state["optimizer"] if name == "all" else state["optimizers"][name])
        generator.set_state(state["generator"].to("cpu"))
        history = state["history"]
        if progress and len(history) < tc.epochs:
            message = f"{cfg.run_id}: resuming from the checkpoint after epoch {len(history)}"
            tqdm.write(message, file=sys.stderr)  # stdout carries results only
    model.train()
    epochs = range(len(history), tc.epochs)
    # a terminal gets a bar; a log file (or a notebook) a line per epoch that `tail` can read
    lines = progress and not sys.stderr.isatty()
    bar = tqdm(
        epochs, desc=cfg.run_id, disable=not progress or lines, initial=len(history),
        total=tc.epochs,
    )  # fmt: skip
    first, session_s = len(history), 0.0
    for epoch in bar:
        start = time.perf_counter()
        row = _run_epoch(model, optimizers, data, cfg, epoch, generator)
        row["time_s"] = round(time.perf_counter() - start, 3)
        history.append(row)
        bar.set_postfix(loss=f"{row['loss']:.2f}")
        last = epoch + 1 == tc.epochs
        saved = ckpt is not None and ((epoch + 1) % checkpoint_every == 0 or last)
        if saved:
            state = {
                "model": model.state_dict(),
                **_optimizer_states(optimizers),
                "generator": generator.get_state(),
                "history": history,
            }
            store.save_torch(ckpt, state)
        session_s += row["time_s"]
        if lines:
            mean_s = session_s / (epoch + 1 - first)  # over the epochs of this call
            print(epoch_line(cfg.run_id, row, tc.epochs, mean_s, saved), file=sys.stderr)
        if on_epoch_end is not None:
            on_epoch_end(row)
    model.eval()
    return model, history


def epoch_line(run_id: str, row: dict, epochs: int, mean_s: float, saved: bool) -> str:
    """One progress line: epoch, loss, seconds per epoch and the time left at that pace."""
    left = round(mean_s * (epochs - row["epoch"]))
    eta = (
        f"{left // 3600}h{left % 3600 // 60:02d}m"
        if left >= 3600
        else f"{left // 60}m{left % 60:02d}s"
    )
    saved = ", checkpoint saved" if saved else ""
    return (
        f"{run_id}: epoch {row['epoch']}/{epochs} loss {row['loss']:.2f}, "
        f"{row['time_s']:.1f} s (mean {mean_s:.1f} s), ETA {eta}{saved}"
    )


def _optimizer_states(optimizers: dict) -> dict:
    if "all" in optimizers:
        return {"optimizer": optimizers["all"].state_dict()}
    return {"optimizers": {name: opt.state_dict() for name, opt in optimizers.items()}}
