"""R runs of one MNIST MLP architecture as one stacked model (the book's Performance chapter).

Runs that differ only in seed and alpha share every shape: their parameters are stacked along
a leading run dimension (R, ...) and each layer is one batched matmul (BLinear). The networks
classes of the single-run models are reused unchanged. Also here: per-run gradient clipping of
the stacked gradients, and the check that runs may be stacked at all.
"""

from __future__ import annotations

import torch
from torch import nn

from jmvae_core import models
from jmvae_core.config import VARIANTS, ConfigError, ModelConfig
from jmvae_core.models import build_model

# the only fields batched runs may differ in; the others fix the shapes or the shared schedule
PER_RUN_FIELDS = {("model", "alpha"), ("train", "seed")}


class _BatchedAffine(torch.autograd.Function):
    """h (R, B, in), weight (R, out, in), bias (R, 1, out) -> (R, B, out) (book/model.md layers).

    Run by run, the very matmuls of nn.Linear's autograd (x W^T + b; g W; g^T x; batch sum of g).
    Autograd of baddbmm would form the weight gradient as (x^T g)^T, which rounds differently
    for 10-unit layers; training amplifies such last-bit differences chaotically.
    """

    @staticmethod
    def forward(ctx, h, weight, bias):
        ctx.save_for_backward(h, weight)
        return torch.baddbmm(bias, h, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, g):
        h, weight = ctx.saved_tensors
        need_h, need_w, need_b = ctx.needs_input_grad
        grad_h = g.bmm(weight) if need_h else None  # not for the data layers
        grad_w = g.transpose(1, 2).bmm(h) if need_w else None
        grad_b = g.sum(1, keepdim=True) if need_b else None
        return grad_h, grad_w, grad_b


class BLinear(nn.Module):
    """R independent nn.Linear layers (the book's protocol): h (R, B, in) -> (R, B, out).

    weight (R, out, in) keeps nn.Linear's (out, in) layout, so each run's slice is exactly
    that run's nn.Linear weight; bias (R, 1, out) broadcasts over the batch.
    """

    def __init__(self, runs: int, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(runs, n_out, n_in))
        self.bias = nn.Parameter(torch.zeros(runs, 1, n_out))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return _BatchedAffine.apply(h, self.weight, self.bias)


def _batchify(module: nn.Module, runs: int) -> nn.Module:
    """Swap every nn.Linear inside `module` for a BLinear of R runs, in place."""
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, BLinear(runs, child.in_features, child.out_features))
        else:
            _batchify(child, runs)
    return module


class BatchedModel(nn.Module):
    """R runs of one variant (the book's protocol): the single-run submodules, nn.Linear -> BLinear.

    The networks classes are reused unchanged: their code only uses the last dimension, so
    with BLinear layers they map (R, B, in) to (R, B, ...)."""

    def __init__(self, cfgs: list[ModelConfig]):
        super().__init__()
        _check_same([{"model": vars(c)} for c in cfgs])
        if cfgs[0].variant not in VARIANTS:
            raise ConfigError(
                f"batched training covers the paper's models ({', '.join(VARIANTS)}); "
                f"train {cfgs[0].variant} with train.fit"
            )
        self.cfgs = list(cfgs)
        self.cfg = cfgs[0]  # shared fields only (variant, sizes, cmma_prior_kl); alpha is per run
        self.spec = models.spec(self.cfg.variant)  # as build_model gives a single model
        self.runs = len(cfgs)
        # a template gives structure and names; on the meta device it draws no random numbers
        with torch.device("meta"):
            template = self.spec.build(self.cfg)
        for name, child in template.named_children():
            setattr(self, name, _batchify(child, self.runs))
        for name in ("q_z_x", "q_z_w"):  # JMVAE-zero keeps them as None, like the single model
            if getattr(template, name, 0) is None:
                setattr(self, name, None)
        self.register_buffer("alpha", torch.tensor([c.alpha for c in cfgs]))

    def infer_from_x(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x) (VAE, JMVAE-kl) or q(z|x,0) (JMVAE-zero): (R, B, X) -> 2 x (R, B, D)."""
        if self.cfg.variant in ("cvae", "cmma"):
            raise AttributeError(f"{self.cfg.variant} has no single-input inference")
        if getattr(self, "q_z_x", None) is not None:
            return self.q_z_x(x)
        return self.q_z_xw(x, x.new_zeros(*x.shape[:-1], self.cfg.w_dim))

    def infer_from_w(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|w) (JMVAE-kl) or q(z|0,w) (JMVAE-zero, book/model.md): (R, B, W) -> 2 x (R, B, D)."""
        if not self.cfg.variant.startswith("jmvae"):
            raise AttributeError(f"{self.cfg.variant} has no inference from w alone")
        if self.q_z_w is not None:
            return self.q_z_w(w)
        return self.q_z_xw(w.new_zeros(*w.shape[:-1], self.cfg.x_dim), w)


def stack_models(models: list[nn.Module]) -> BatchedModel:
    """Copy R single-run models (book/model.md) into one BatchedModel on their device."""
    batched = BatchedModel([m.cfg for m in models])
    singles = [dict(m.named_parameters()) for m in models]
    with torch.no_grad():
        for name, param in batched.named_parameters():
            # nn.Linear's weight (out, in) and bias (out,) -> BLinear's (R, out, in), (R, 1, out)
            param.copy_(torch.stack([s[name].view(param.shape[1:]) for s in singles]))
    return batched.to(next(models[0].parameters()).device)


def unstack(batched: BatchedModel, r: int) -> nn.Module:
    """Run r of `batched` as an ordinary single-run model on the same device."""
    with torch.device("meta"):  # no initialisation work, no draw from the global RNG
        model = build_model(batched.cfgs[r])
    state = {
        name: (p[r, 0] if name.endswith("bias") else p[r]).detach().clone().contiguous()
        for name, p in batched.named_parameters()
    }
    model.load_state_dict(state, assign=True)  # assign: replaces the meta tensors
    return model


@torch.no_grad()
def clip_gradients_per_run(params: list[torch.Tensor], clip_norm, clip_value) -> None:
    """train.clip_gradients for each run's slices of the stacked grads (R, ...).

    In multi-tensor (foreach) operations: on CUDA a few kernels for all tensors instead of
    a few per tensor. On a CPU each foreach operation loops over its tensors with the very
    per-tensor operations clip_grad_norm_ uses there, so the result is bitwise fit's.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    if clip_norm is not None:
        # as clip_grad_norm_: the norm of the per-tensor norms, then min(1, max/(norm + 1e-6))
        runs = [[g[r] for g in grads] for r in range(grads[0].shape[0])]  # per-run views
        norms = torch._foreach_norm([view for run in runs for view in run])
        total = torch.linalg.vector_norm(torch.stack(norms).view(len(runs), -1), dim=1)
        coef = (clip_norm / (total + 1e-6)).clamp(max=1.0)
        for r, run in enumerate(runs):
            torch._foreach_mul_(run, coef[r])
    if clip_value is not None:
        torch._foreach_clamp_min_(grads, -clip_value)
        torch._foreach_clamp_max_(grads, clip_value)


def _check_same(runs: list[dict[str, dict]], allowed: str = "only alpha and seed") -> None:
    """Raise ConfigError naming the first field ("part.name") that differs between runs."""
    if not runs:
        raise ConfigError("batched training needs at least one run")
    for other in runs[1:]:
        for part, fields in other.items():
            for name, value in fields.items():
                first = runs[0][part][name]
                if (part, name) not in PER_RUN_FIELDS and value != first:
                    raise ConfigError(
                        f"{part}.{name} differs between batched runs ({first!r} vs {value!r}); "
                        f"{allowed} may differ"
                    )
