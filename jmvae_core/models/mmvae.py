"""MMVAE (Shi, Siddharth, Paige & Torr 2019): the joint posterior is a mixture of experts.

The unimodal encoders q(z|x) and q(z|w) are JMVAE-kl's (x or w -> hidden -> hidden -> (mean,
variance)); the decoders p(x|z) (Bernoulli), p(w|z) (categorical) and the prior N(0, I) are
JMVAE's (book/model.md). The joint posterior is q(z|x,w) = (q(z|x) + q(z|w)) / 2.

Training maximises the paper's stratified importance-weighted bound, K draws from each expert:
(1/2) sum_m E[log (1/K) sum_k p(x, w, z_mk) / q(z_mk|x,w)], z_mk ~ q_m, with its doubly
reparameterised gradient (DReG, Tucker et al. 2019) as the authors' code (`m_dreg_looser`):
q(z|x,w) inside the weights is evaluated with its parameters held fixed, the decoders' gradient
weights each draw by its normalised importance weight and the encoders' by its square. K = 2 is
the study's choice: each extra draw decodes both modalities once more per expert, and on an
otherwise idle 2-core CPU K = 2 took 1.26-1.36x JMVAE-kl's time per training step and K = 3
1.64-1.72x (benchmarks/successors_speed.py), over the 1.5x the comparison allows; the paper
used K = 30 on MNIST-SVHN. The paper's Laplace posteriors and prior and its likelihood
rescaling are replaced by JMVAE's Gaussians and unit weights, so that the comparison is like for
like. beta (warm-up) scales log p(z) - log q(z|x,w) inside the weights.

Estimators (book/model.md's five): joint, marginal and conditional with the mixture q(z|x,w) as
proposal (stratified draws); the single-input ones with q(z|x) and q(z|w). Label -> image:
z ~ q(z|w), then p(x|z); image -> label: p(w|z) at the mean of q(z|x).
"""

from __future__ import annotations

import math

import torch

from jmvae_core.models.declaration import JMVAE_ESTIMATORS, ModelSpec, via_q_z_w, via_q_z_x
from jmvae_core.nn.networks import log_std_normal
from jmvae_core.nn.posteriors import Mixture, UnimodalExperts, proposals_with_joint

K = 2  # importance samples per expert in training


class MMVAE(UnimodalExperts):
    """Unimodal encoders q(z|x), q(z|w) and decoders p(x|z), p(w|z); q(z|x,w) their mixture."""


def joint_posterior(model, x, w) -> Mixture:
    """q(z|x,w) = (q(z|x) + q(z|w)) / 2."""
    return Mixture([model.q_z_x(x), model.q_z_w(w)])


def mmvae_loss(model, x, w, eps, beta=1.0, alpha=None, k=K) -> dict:
    """-(stratified K-draw bound) with DReG gradients; eps holds 2K latent draws per example."""
    experts = [model.q_z_x(x), model.q_z_w(w)]
    noise = eps.unflatten(-1, (2, k, -1)).movedim((-3, -2), (0, 1))  # (2, K, ..., B, D)
    z = torch.stack([q.rsample(e) for q, e in zip(experts, noise, strict=True)])
    fixed = Mixture([(q.mu.detach(), q.var.detach()) for q in experts])
    log_px = model.p_x_z.log_prob(x.expand(*z.shape[:-1], x.shape[-1]), z)  # (2, K, ..., B)
    log_pw = model.p_w_z.log_prob(w, z)
    log_ratio = log_std_normal(z) - fixed.log_prob(z)  # log p(z) - log q(z|x,w)
    log_w = log_px + log_pw + beta * log_ratio
    bound = (torch.logsumexp(log_w, dim=1) - math.log(k)).mean(0)
    with torch.no_grad():
        weight = torch.softmax(log_w, dim=1)  # normalised over the K draws of each expert
    if z.requires_grad:  # DReG: the encoders' gradient through z by the squared weight
        z.register_hook(lambda grad: grad * weight.unsqueeze(-1))
    surrogate = (weight * log_w).sum(1).mean(0)  # its gradient: the decoders' DReG term
    objective = bound.detach() + surrogate - surrogate.detach()  # value: the bound
    return {
        "loss": -objective.mean(-1),
        "rec_x": -log_px.mean((0, 1)).mean(-1).detach(),
        "rec_w": -log_pw.mean((0, 1)).mean(-1).detach(),
        "kl_prior": -log_ratio.mean((0, 1)).mean(-1).detach(),  # Monte-Carlo KL(q || p)
    }


SPECS = (
    ModelSpec(
        name="mmvae",
        label="MMVAE",
        build=MMVAE,
        objective=mmvae_loss,
        estimators=JMVAE_ESTIMATORS,  # the same five, with this model's proposals
        proposals=proposals_with_joint(joint_posterior),
        label_to_image=via_q_z_w,
        image_to_label=via_q_z_x,
        noise_samples=2 * K,
    ),
)
