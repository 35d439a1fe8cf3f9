"""The paper's five MNIST models (book/model.md): VAE, CVAE, CMMA, JMVAE-zero and JMVAE-kl,
each in one place, as every successor is: networks (no losses inside; every encoder returns a
networks.Gaussian, decoders expose `log_prob`), objectives, estimator tables and declarations.

Objectives are pure functions of (model, batch, noise) (book/model.md, Protocol). Each returns
a dict of batch-mean terms; "loss" is the quantity minimised. The same function serves one run
(x (B, X), w (B, W), eps (B, D): scalar terms) and R stacked runs (training.stacked.BatchedModel;
x (R, B, X), w (R, B, W), eps (R, B, D): terms (R,)), since every batch mean is taken over
dim -1 of the per-example values. `eps` is the standard-normal noise of the one Monte-Carlo
sample per example (as the authors' code): the caller draws it (networks.draw_noise for one
run, training.batched_step.EpochInputs for stacked runs), so every training path calls these
functions. `beta` scales the KL to the prior (warm-up); `alpha` is JMVAE-kl's weight of the
two unimodal KLs, already scaled by the warm-up where that anneals it: a float, or (R,) for
stacked runs; None means `model.cfg.alpha` (one run only).
"""

from __future__ import annotations

import torch
from torch import nn

from jmvae_core.config import ModelConfig
from jmvae_core.models.declaration import (
    JMVAE_ESTIMATORS,
    ModelSpec,
    via_p_z_w,
    via_prior_and_label,
    via_q_z_w,
    via_q_z_x,
)
from jmvae_core.nn.networks import (
    BernoulliMLP,
    CategoricalMLP,
    ConditionalBernoulliMLP,
    GaussianMLP,
    JointGaussianMLP,
)


class VAE(nn.Module):
    """Image-only VAE: q(z|x), p(x|z), prior N(0, I)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.q_z_x = GaussianMLP(cfg.x_dim, cfg.hidden, cfg.latent_dim)
        self.p_x_z = BernoulliMLP(cfg.latent_dim, cfg.hidden, cfg.x_dim)

    def infer_from_x(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x), under the name every model uses for image-only inference."""
        return self.q_z_x(x)


class CVAE(nn.Module):
    """Conditional VAE: q(z|x,w), p(x|z,w), prior N(0, I)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.q_z_xw = JointGaussianMLP(cfg.x_dim, cfg.w_dim, cfg.hidden, cfg.latent_dim)
        self.p_x_zw = ConditionalBernoulliMLP(cfg.latent_dim, cfg.w_dim, cfg.hidden, cfg.x_dim)


class CMMA(nn.Module):
    """CMMA (Pandey & Dukkipati 2016): q(z|x,w), learned conditional prior p(z|w), p(x|z)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.q_z_xw = JointGaussianMLP(cfg.x_dim, cfg.w_dim, cfg.hidden, cfg.latent_dim)
        self.p_z_w = GaussianMLP(cfg.w_dim, cfg.hidden, cfg.latent_dim)
        self.p_x_z = BernoulliMLP(cfg.latent_dim, cfg.hidden, cfg.x_dim)


class JMVAE(nn.Module):
    """JMVAE: q(z|x,w), p(x|z), p(w|z); with `unimodal`, also q(z|x) and q(z|w) (JMVAE-kl)."""

    def __init__(self, cfg: ModelConfig, unimodal: bool):
        super().__init__()
        self.cfg = cfg
        self.q_z_xw = JointGaussianMLP(cfg.x_dim, cfg.w_dim, cfg.hidden, cfg.latent_dim)
        self.p_x_z = BernoulliMLP(cfg.latent_dim, cfg.hidden, cfg.x_dim)
        self.p_w_z = CategoricalMLP(cfg.latent_dim, cfg.hidden, cfg.w_dim)
        self.q_z_x = GaussianMLP(cfg.x_dim, cfg.hidden, cfg.latent_dim) if unimodal else None
        self.q_z_w = GaussianMLP(cfg.w_dim, cfg.hidden, cfg.latent_dim) if unimodal else None

    def infer_from_x(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Single-input inference: q(z|x) (JMVAE-kl) or q(z|x,0) (JMVAE-zero, book/model.md)."""
        if self.q_z_x is not None:
            return self.q_z_x(x)
        return self.q_z_xw(x, x.new_zeros(x.shape[0], self.cfg.w_dim))

    def infer_from_w(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Single-input inference: q(z|w) (JMVAE-kl) or q(z|0,w) (JMVAE-zero, book/model.md)."""
        if self.q_z_w is not None:
            return self.q_z_w(w)
        return self.q_z_xw(w.new_zeros(w.shape[0], self.cfg.x_dim), w)


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


ESTIMATORS = {
    "jmvae_kl": JMVAE_ESTIMATORS,
    "jmvae_zero": JMVAE_ESTIMATORS,
    "vae": {"marginal": ("x", ("px", "pz"), False)},
    "cvae": {"conditional": ("xw", ("px_w", "pz"), False)},
    "cmma": {
        "conditional": ("xw", ("px", "pz_w"), False),
        "marginal": ("xw", ("px", "pz"), False),
    },
}

LABELS = {  # as the book's tables and figures name them
    "vae": "VAE",
    "cvae": "CVAE",
    "cmma": "CMMA",
    "jmvae_zero": "JMVAE-zero",
    "jmvae_kl": "JMVAE-kl",
}
LABEL_TO_IMAGE = {
    "vae": None,
    "cvae": via_prior_and_label,
    "cmma": via_p_z_w,
    "jmvae_zero": via_q_z_w,
    "jmvae_kl": via_q_z_w,
}
IMAGE_TO_LABEL = {"jmvae_zero": via_q_z_x, "jmvae_kl": via_q_z_x}  # the models with p(w|z)

BUILD = {
    "vae": VAE,
    "cvae": CVAE,
    "cmma": CMMA,
    "jmvae_zero": lambda cfg: JMVAE(cfg, unimodal=False),
    "jmvae_kl": lambda cfg: JMVAE(cfg, unimodal=True),
}
OBJECTIVES = {
    "vae": vae_loss,
    "cvae": cvae_loss,
    "cmma": cmma_loss,
    "jmvae_zero": jmvae_loss,
    "jmvae_kl": jmvae_kl_loss,
}
SPECS = tuple(
    ModelSpec(
        name=name,
        label=LABELS[name],
        build=BUILD[name],
        objective=OBJECTIVES[name],
        estimators=ESTIMATORS[name],
        label_to_image=LABEL_TO_IMAGE[name],
        image_to_label=IMAGE_TO_LABEL.get(name),
        bf16_estimators=True,  # measured: benchmarks/estimator_precision.py
    )
    for name in LABELS
)
