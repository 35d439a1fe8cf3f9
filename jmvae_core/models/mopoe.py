"""MoPoE (Sutter, Daunhawer & Vogt 2021): the joint posterior is a mixture of products of experts.

The unimodal encoders q(z|x) and q(z|w) are JMVAE-kl's; the decoders p(x|z) (Bernoulli), p(w|z)
(categorical) and the prior N(0, I) are JMVAE's (book/model.md). Each non-empty subset S of the
modalities has the posterior q(z|S), the product of its experts; as in the authors' code the
prior expert N(0, I) joins the product of the full subset only: q(z|{x}) = q(z|x),
q(z|{w}) = q(z|w), q(z|{x,w}) = PoE(N(0, I), q(z|x), q(z|w)). The joint posterior is their
uniform mixture, q(z|x,w) = (q(z|{x}) + q(z|{w}) + q(z|{x,w})) / 3.

Training maximises the paper's ELBO with that mixture posterior,
E_q(z|x,w)[log p(x|z) + log p(w|z)] - beta KL(q(z|x,w) || N(0, I)), with the KL of the mixture
replaced by the mixture of the subsets' KLs, sum_S KL(q(z|S) || N(0, I)) / 3 (analytic; an upper
bound by convexity, as the authors' implementation), and the expectation stratified over the
subsets: one draw from each q(z|S) per example.

Estimators (book/model.md's five): joint, marginal and conditional with the mixture q(z|x,w) as
proposal (stratified draws); the single-input ones with q(z|{x}) and q(z|{w}). Label -> image:
z ~ q(z|w), then p(x|z); image -> label: p(w|z) at the mean of q(z|x).
"""

from __future__ import annotations

import torch

from jmvae_core.models.declaration import JMVAE_ESTIMATORS, ModelSpec, via_q_z_w, via_q_z_x
from jmvae_core.nn.networks import Gaussian
from jmvae_core.nn.posteriors import (
    Mixture,
    UnimodalExperts,
    product_of_experts,
    proposals_with_joint,
)


class MoPoE(UnimodalExperts):
    """Unimodal encoders q(z|x), q(z|w) and decoders p(x|z), p(w|z)."""


def subset_posteriors(model, x, w) -> list[Gaussian]:
    """q(z|{x}), q(z|{w}) and q(z|{x,w}) = PoE(N(0, I), q(z|x), q(z|w))."""
    q_x, q_w = model.q_z_x(x), model.q_z_w(w)
    return [q_x, q_w, product_of_experts([q_x, q_w])]


def joint_posterior(model, x, w) -> Mixture:
    """q(z|x,w): the uniform mixture of the three subsets' posteriors."""
    return Mixture(subset_posteriors(model, x, w))


def mopoe_loss(model, x, w, eps, beta=1.0, alpha=None) -> dict:
    """-ELBO with the mixture posterior (subsets' KLs averaged); eps: one draw per subset."""
    subsets = subset_posteriors(model, x, w)
    z = torch.cat([q.rsample(e) for q, e in zip(subsets, eps.chunk(3, dim=-1), strict=True)], -2)
    n = len(subsets)
    # each decoder once over the three subsets' draws; the means over draws are the mixture's
    rec_x = -model.p_x_z.log_prob(torch.cat([x] * n, -2), z).mean(-1)
    rec_w = -model.p_w_z.log_prob(torch.cat([w] * n, -2), z).mean(-1)
    kl_prior = sum(q.kl_to_prior() for q in subsets).mean(-1) / n
    return {"loss": rec_x + rec_w + beta * kl_prior, "rec_x": rec_x, "rec_w": rec_w,
            "kl_prior": kl_prior}  # fmt: skip


SPECS = (
    ModelSpec(
        name="mopoe",
        label="MoPoE",
        build=MoPoE,
        objective=mopoe_loss,
        estimators=JMVAE_ESTIMATORS,  # the same five, with this model's proposals
        proposals=proposals_with_joint(joint_posterior),
        label_to_image=via_q_z_w,
        image_to_label=via_q_z_x,
        noise_samples=3,
    ),
)
