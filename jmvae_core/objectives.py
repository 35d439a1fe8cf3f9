"""Training objectives as pure functions of (model, batch, noise) (book/model.md, Protocol).

Each returns a dict of batch-mean terms; "loss" is the quantity minimised. The same function
serves one run (x (B, X), w (B, W), eps (B, D): scalar terms) and R stacked runs
(stacked.BatchedModel; x (R, B, X), w (R, B, W), eps (R, B, D): terms (R,)), since every
batch mean is taken over dim -1 of the per-example values. `eps` is the standard-normal noise
of the one Monte-Carlo sample per example (as the authors' code): the caller draws it
(`draw_noise` for one run, batched_step.EpochInputs for stacked runs), so every training
path calls these functions. `beta` scales the KL to the prior (warm-up); `alpha` is
JMVAE-kl's weight of the two unimodal KLs, already scaled by the warm-up where that anneals
it: a float, or (R,) for stacked runs; None means `model.cfg.alpha` (one run only).
"""

from __future__ import annotations

import torch


def draw_noise(generator: torch.Generator | None, x: torch.Tensor, latent_dim: int):
    """One run's noise eps (B, D) for a batch x (B, ...), in the dtype its encoders return.

    Under autocast the encoders return bfloat16, and the noise is drawn in bfloat16, as
    networks.Gaussian.sample draws it in the dtype of the mean.
    """
    dtype = x.dtype
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
    return torch.randn((x.shape[0], latent_dim), generator=generator, device=x.device, dtype=dtype)


def vae_loss(model, x, w, eps, beta=1.0, alpha=None) -> dict:
    """-ELBO of an image-only VAE: -E_q(z|x) log p(x|z) + beta KL(q(z|x) || N(0, I))."""
    q = model.q_z_x(x)
    rec_x = -model.p_x_z.log_prob(x, q.rsample(eps)).mean(-1)
    kl_prior = q.kl_to_prior().mean(-1)
    return {"loss": rec_x + beta * kl_prior, "rec_x": rec_x, "kl_prior": kl_prior}


def cvae_loss(model, x, w, eps, beta=1.0, alpha=None) -> dict:
    """-ELBO of log p(x|w): -E_q(z|x,w) log p(x|z,w) + beta KL(q(z|x,w) || N(0, I))."""
    q = model.q_z_xw(x, w)
    rec_x = -model.p_x_zw.log_prob(x, q.rsample(eps), w).mean(-1)
    kl_prior = q.kl_to_prior().mean(-1)
    return {"loss": rec_x + beta * kl_prior, "rec_x": rec_x, "kl_prior": kl_prior}


def cmma_loss(model, x, w, eps, beta=1.0, alpha=None) -> dict:
    """CMMA: -E_q(z|x,w) log p(x|z) + beta [KL(q || p(z|w)) + KL(q || N(0, I))].

    The second KL is the authors' addition (book/model.md, Protocol); `cmma_prior_kl=False`
    drops it.
    """
    q = model.q_z_xw(x, w)
    rec_x = -model.p_x_z.log_prob(x, q.rsample(eps)).mean(-1)
    kl_cond = q.kl_to(model.p_z_w(w)).mean(-1)
    kl_prior = q.kl_to_prior().mean(-1) if model.cfg.cmma_prior_kl else torch.zeros_like(rec_x)
    loss = rec_x + beta * (kl_cond + kl_prior)
    return {"loss": loss, "rec_x": rec_x, "kl_cond": kl_cond, "kl_prior": kl_prior}


def jmvae_loss(model, x, w, eps, beta=1.0, alpha=None) -> dict:
    """-L(x,w): -E_q(z|x,w)[log p(x|z) + log p(w|z)] + beta KL(q(z|x,w) || N(0, I))."""
    terms, _ = _joint_terms(model, x, w, eps)
    terms["loss"] = terms["rec_x"] + terms["rec_w"] + beta * terms["kl_prior"]
    return terms


def jmvae_kl_loss(model, x, w, eps, beta=1.0, alpha=None) -> dict:
    """-L(x,w) + alpha [KL(q(z|x,w) || q(z|x)) + KL(q(z|x,w) || q(z|w))] (the paper's JMVAE-kl).

    All five networks receive gradients from every term (no stop-gradient, as the code).
    """
    terms, q = _joint_terms(model, x, w, eps)
    terms["kl_x"] = q.kl_to(model.q_z_x(x)).mean(-1)
    terms["kl_w"] = q.kl_to(model.q_z_w(w)).mean(-1)
    alpha = model.cfg.alpha if alpha is None else alpha
    terms["loss"] = (
        terms["rec_x"]
        + terms["rec_w"]
        + beta * terms["kl_prior"]
        + alpha * (terms["kl_x"] + terms["kl_w"])
    )
    return terms


def _joint_terms(model, x, w, eps):
    q = model.q_z_xw(x, w)
    z = q.rsample(eps)
    terms = {
        "rec_x": -model.p_x_z.log_prob(x, z).mean(-1),
        "rec_w": -model.p_w_z.log_prob(w, z).mean(-1),
        "kl_prior": q.kl_to_prior().mean(-1),
    }
    return terms, q


OBJECTIVES = {
    "vae": vae_loss,
    "cvae": cvae_loss,
    "cmma": cmma_loss,
    "jmvae_zero": jmvae_loss,
    "jmvae_kl": jmvae_kl_loss,
}
