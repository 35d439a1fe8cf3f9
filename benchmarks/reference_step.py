"""The training step of `jmvae_core.training.fit` before its clipping skipped no-op passes.

Kept as the reference of `benchmarks/step_speed.py` and of the bitwise test in
tests/test_train.py: the same objective and Adam, with the clipping done by the two torch
calls (global norm, then element-wise), which rescale every gradient even when the factor is
1 and clamp every gradient even when none of its elements can exceed the bound.
"""

from __future__ import annotations

import contextlib

import torch

from jmvae_core.nn.networks import draw_noise
from jmvae_core.training import fit


def clip_gradients(params, tc) -> None:
    """Rescale to global norm <= clip_norm, then clamp to +-clip_value, by torch's calls."""
    if tc.clip_norm is not None:
        torch.nn.utils.clip_grad_norm_(params, tc.clip_norm)
    if tc.clip_value is not None:
        torch.nn.utils.clip_grad_value_(params, tc.clip_value)


def step(model, optimizers, x, w, generator, beta, alpha_scale, tc) -> dict:
    """fit._step of a single-optimizer model, clipping with `clip_gradients` above."""
    with fit.autocast(tc, x.device):
        eps = draw_noise(generator, x, model.spec.noise_dim(model.cfg.latent_dim))
        alpha = model.cfg.alpha * alpha_scale
        terms = model.spec.objective(model, x, w, eps, beta, alpha)
    optimizers["all"].zero_grad(set_to_none=True)
    terms["loss"].backward()
    clip_gradients(optimizers["all"].param_groups[0]["params"], tc)
    optimizers["all"].step()
    return terms


@contextlib.contextmanager
def in_fit():
    """Inside the block, `fit.fit` (and `fit._run_epoch`) take the reference step."""
    kept = fit._step
    fit._step = step
    try:
        yield
    finally:
        fit._step = kept
