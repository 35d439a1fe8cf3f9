"""Training objectives as pure functions of (model, batch) (SPEC §2-3).

Each returns a dict of batch-mean terms (scalars, nats); "loss" is the quantity minimised.
`beta` scales the KL to the prior (warm-up); `alpha_scale` scales the alpha terms when the
warm-up is asked to anneal them too. One Monte-Carlo sample per example, as the code.
"""

from __future__ import annotations

import torch

from .networks import kl_normal


def sample(mu: torch.Tensor, var: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Reparameterised draw z = mu + sqrt(var) * eps: (B, D) -> (B, D)."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + var.sqrt() * eps


def vae_loss(model, x, w, generator=None, beta=1.0, alpha_scale=1.0) -> dict:
    """-ELBO of an image-only VAE: -E_q(z|x) log p(x|z) + beta KL(q(z|x) || N(0, I))."""
    mu, var = model.q_z_x(x)
    z = sample(mu, var, generator)
    rec_x = -model.p_x_z.log_prob(x, z).mean()
    kl_prior = kl_normal(mu, var).mean()
    return {"loss": rec_x + beta * kl_prior, "rec_x": rec_x, "kl_prior": kl_prior}


def cvae_loss(model, x, w, generator=None, beta=1.0, alpha_scale=1.0) -> dict:
    """-ELBO of log p(x|w): -E_q(z|x,w) log p(x|z,w) + beta KL(q(z|x,w) || N(0, I))."""
    mu, var = model.q_z_xw(x, w)
    z = sample(mu, var, generator)
    rec_x = -model.p_x_zw.log_prob(x, z, w).mean()
    kl_prior = kl_normal(mu, var).mean()
    return {"loss": rec_x + beta * kl_prior, "rec_x": rec_x, "kl_prior": kl_prior}


def cmma_loss(model, x, w, generator=None, beta=1.0, alpha_scale=1.0) -> dict:
    """CMMA: -E_q(z|x,w) log p(x|z) + beta [KL(q || p(z|w)) + KL(q || N(0, I))].

    The second KL is the authors' addition (SPEC §2); `cmma_prior_kl=False` drops it.
    """
    mu, var = model.q_z_xw(x, w)
    z = sample(mu, var, generator)
    rec_x = -model.p_x_z.log_prob(x, z).mean()
    kl_cond = kl_normal(mu, var, *model.p_z_w(w)).mean()
    kl_prior = kl_normal(mu, var).mean() if model.cfg.cmma_prior_kl else torch.zeros_like(rec_x)
    loss = rec_x + beta * (kl_cond + kl_prior)
    return {"loss": loss, "rec_x": rec_x, "kl_cond": kl_cond, "kl_prior": kl_prior}


def jmvae_loss(model, x, w, generator=None, beta=1.0, alpha_scale=1.0) -> dict:
    """-L(x,w): -E_q(z|x,w)[log p(x|z) + log p(w|z)] + beta KL(q(z|x,w) || N(0, I))."""
    terms, _ = _joint_terms(model, x, w, generator)
    terms["loss"] = terms["rec_x"] + terms["rec_w"] + beta * terms["kl_prior"]
    return terms


def jmvae_kl_loss(model, x, w, generator=None, beta=1.0, alpha_scale=1.0) -> dict:
    """-L(x,w) + alpha [KL(q(z|x,w) || q(z|x)) + KL(q(z|x,w) || q(z|w))] (SPEC §2).

    All five networks receive gradients from every term (no stop-gradient, as the code).
    """
    terms, (mu, var) = _joint_terms(model, x, w, generator)
    terms["kl_x"] = kl_normal(mu, var, *model.q_z_x(x)).mean()
    terms["kl_w"] = kl_normal(mu, var, *model.q_z_w(w)).mean()
    alpha = model.cfg.alpha * alpha_scale
    terms["loss"] = (
        terms["rec_x"]
        + terms["rec_w"]
        + beta * terms["kl_prior"]
        + alpha * (terms["kl_x"] + terms["kl_w"])
    )
    return terms


def _joint_terms(model, x, w, generator):
    mu, var = model.q_z_xw(x, w)
    z = sample(mu, var, generator)
    terms = {
        "rec_x": -model.p_x_z.log_prob(x, z).mean(),
        "rec_w": -model.p_w_z.log_prob(w, z).mean(),
        "kl_prior": kl_normal(mu, var).mean(),
    }
    return terms, (mu, var)


OBJECTIVES = {
    "vae": vae_loss,
    "cvae": cvae_loss,
    "cmma": cmma_loss,
    "jmvae_zero": jmvae_loss,
    "jmvae_kl": jmvae_kl_loss,
}
