"""MVAE (Wu & Goodman 2018): the posterior is a product of Gaussian experts.

One expert network per modality, x -> hidden -> hidden -> (mean, variance) and the same for w,
as JMVAE-kl's unimodal encoders; the decoders p(x|z) (Bernoulli) and p(w|z) (categorical) and
the prior N(0, I) are JMVAE's (book/model.md). Any set of observed modalities S has the
posterior q(z|S) = PoE of the prior expert N(0, I) and the experts of S. Training maximises the
sub-sampled ELBO of the paper, which for two modalities is every subset:
ELBO(x, w) + ELBO(x) + ELBO(w), where ELBO(S) reconstructs only the modalities in S under
q(z|S). The paper weighted the label's log-likelihood by 50 on MNIST; here every weight is 1,
as JMVAE's objective, so that the comparison is like for like. beta (warm-up) scales each KL.

Estimators (book/model.md's five): joint, marginal and conditional with the PoE posterior
q(z|x,w) as proposal; the single-input ones with q(z|x) and q(z|w). Label -> image: z ~ q(z|w),
then p(x|z); image -> label: p(w|z) at the mean of q(z|x).
"""

from __future__ import annotations

import torch
from torch import nn

from jmvae_core.config import ModelConfig
from jmvae_core.models.declaration import JMVAE_ESTIMATORS, ModelSpec, via_q_z_w, via_q_z_x
from jmvae_core.nn.networks import BernoulliMLP, CategoricalMLP, Gaussian, GaussianMLP
from jmvae_core.nn.posteriors import product_of_experts


class MVAE(nn.Module):
    """Experts for x and w, decoders p(x|z), p(w|z); posteriors are products of experts."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.expert_x = GaussianMLP(cfg.x_dim, cfg.hidden, cfg.latent_dim)
        self.expert_w = GaussianMLP(cfg.w_dim, cfg.hidden, cfg.latent_dim)
        self.p_x_z = BernoulliMLP(cfg.latent_dim, cfg.hidden, cfg.x_dim)
        self.p_w_z = CategoricalMLP(cfg.latent_dim, cfg.hidden, cfg.w_dim)

    def infer_from_x(self, x: torch.Tensor) -> Gaussian:
        """q(z|x): the prior expert times the image expert."""
        return posterior(self, x=x)

    def infer_from_w(self, w: torch.Tensor) -> Gaussian:
        """q(z|w): the prior expert times the label expert."""
        return posterior(self, w=w)


def posterior(model, x=None, w=None) -> Gaussian:
    """q(z|S) for the observed modalities S: the PoE of the prior expert and S's experts."""
    experts = []
    if x is not None:
        experts.append(model.expert_x(x))
    if w is not None:
        experts.append(model.expert_w(w))
    return product_of_experts(experts)


def mvae_loss(model, x, w, eps, beta=1.0, alpha=None) -> dict:
    """-[ELBO(x,w) + ELBO(x) + ELBO(w)]; eps holds three latent draws per example.

    ELBO(x,w) = E_q(z|x,w)[log p(x|z) + log p(w|z)] - beta KL(q(z|x,w) || N(0, I)),
    ELBO(x) = E_q(z|x)[log p(x|z)] - beta KL(q(z|x) || N(0, I)), ELBO(w) likewise.
    """
    e_x, e_w = model.expert_x(x), model.expert_w(w)
    q_xw, q_x, q_w = (
        product_of_experts([e_x, e_w]),
        product_of_experts([e_x]),
        product_of_experts([e_w]),
    )
    eps_xw, eps_x, eps_w = eps.chunk(3, dim=-1)
    z_xw, z_x, z_w = q_xw.rsample(eps_xw), q_x.rsample(eps_x), q_w.rsample(eps_w)
    b = x.shape[-2]
    # each decoder once, over the two batches of draws it reads
    log_px = model.p_x_z.log_prob(torch.cat([x, x], -2), torch.cat([z_xw, z_x], -2))
    log_pw = model.p_w_z.log_prob(torch.cat([w, w], -2), torch.cat([z_xw, z_w], -2))
    terms = {
        "rec_x": -log_px[..., :b].mean(-1),
        "rec_w": -log_pw[..., :b].mean(-1),
        "kl_prior": q_xw.kl_to_prior().mean(-1),
        "rec_x_given_x": -log_px[..., b:].mean(-1),
        "kl_prior_x": q_x.kl_to_prior().mean(-1),
        "rec_w_given_w": -log_pw[..., b:].mean(-1),
        "kl_prior_w": q_w.kl_to_prior().mean(-1),
    }
    terms["loss"] = (
        terms["rec_x"] + terms["rec_w"] + beta * terms["kl_prior"]
        + terms["rec_x_given_x"] + beta * terms["kl_prior_x"]
        + terms["rec_w_given_w"] + beta * terms["kl_prior_w"]
    )  # fmt: skip
    return terms


SPECS = (
    ModelSpec(
        name="mvae",
        label="MVAE",
        build=MVAE,
        objective=mvae_loss,
        estimators=JMVAE_ESTIMATORS,  # the same five, with this model's proposals
        proposals={
            "xw": lambda m, x, w: posterior(m, x, w),
            "x": lambda m, x, w: posterior(m, x=x),
            "w": lambda m, x, w: posterior(m, w=w),
        },
        label_to_image=via_q_z_w,
        image_to_label=via_q_z_x,
        noise_samples=3,
    ),
)
