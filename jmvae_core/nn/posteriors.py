"""Posterior distributions the encoders and estimators share: a diagonal Gaussian, a product of
Gaussian experts and a mixture of Gaussians (book/model.md).

Every encoder returns a `Gaussian` (defined with the networks that make it, jmvae_core.networks);
it unpacks as a (mean, variance) pair, which the objectives' and estimators' fast paths read.
A `Mixture` is the joint posterior of the mixture models (MMVAE, MoPoE): the estimators draw
from it stratified, the same number of draws from each component. Sampling takes explicit noise
or a torch.Generator (a seeded stream, which torch.distributions cannot take). Shapes:
parameters (..., B, D); log-densities (..., B).
"""

from __future__ import annotations

import math

import torch

from jmvae_core.nn.networks import Gaussian


def product_of_experts(experts: list, prior: bool = True) -> Gaussian:
    """The normalised product of Gaussian experts (and of the prior expert N(0, I) with
    `prior`): precisions add, and the mean is the precision-weighted mean of the experts'.

    experts: Gaussians of one shape (..., B, D). An expert of infinite variance (zero
    precision) carries no information about its dimension.
    """
    if not experts and not prior:
        raise ValueError("a product of experts needs at least one expert")
    precision = 1.0 if prior else 0.0  # the prior expert: mean 0, precision 1
    weighted = 0.0
    for expert in experts:
        t = 1.0 / expert.var
        precision = precision + t
        weighted = weighted + expert.mu * t
    var = 1.0 / precision
    if not torch.is_tensor(var):  # only the prior expert
        raise ValueError("a product of the prior expert alone has no batch shape")
    return Gaussian(weighted * var, var)


class Mixture:
    """A mixture sum_m pi_m N(mu_m, var_m) of diagonal Gaussians of one shape (..., B, D).

    `weights` default to uniform. `draws(k)` allocates the k draws of an importance-sampling
    estimator to the components, stratified: component m gets k_m draws and each of its draws
    the coefficient pi_m / k_m, so that sum_m pi_m mean_j(w_mj) estimates p exactly without
    bias (with equal k_m = k / M this is the plain mean over all draws).
    """

    def __init__(self, components: list, weights: tuple[float, ...] | None = None):
        self.components = [Gaussian(*c) for c in components]
        m = len(self.components)
        if m == 0:
            raise ValueError("a mixture needs at least one component")
        weights = tuple(1.0 / m for _ in range(m)) if weights is None else tuple(weights)
        if len(weights) != m or min(weights) <= 0 or abs(sum(weights) - 1.0) > 1e-12:
            raise ValueError(f"mixture weights {weights} must be {m} positive numbers summing to 1")
        self.weights = weights

    @property
    def mean(self) -> torch.Tensor:
        return sum(p * c.mu for p, c in zip(self.weights, self.components, strict=True))

    def log_weights(self) -> list[float]:
        """log pi_m: the weights as the density uses them."""
        return [math.log(p) for p in self.weights]

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log sum_m pi_m N(z; mu_m, var_m): z (..., B, D) -> (..., B)."""
        pairs = zip(self.log_weights(), self.components, strict=True)
        return torch.logsumexp(torch.stack([lw + c.log_prob(z) for lw, c in pairs]), dim=0)

    def draws(self, k: int) -> list[tuple[Gaussian, int, float]]:
        """Stratified allocation of k draws: (component, k_m, log(pi_m / k_m)) per component.

        k_m is pi_m k rounded down, the remainder going one by one to the first components;
        every component needs at least one draw (k >= number of components).
        """
        m = len(self.components)
        if k < m:
            raise ValueError(f"k={k} draws cannot cover the {m} components of a mixture")
        counts = [max(1, math.floor(p * k)) for p in self.weights]
        for i in range(k - sum(counts)):
            counts[i % m] += 1
        if sum(counts) != k:
            raise ValueError(f"cannot allocate k={k} draws to weights {self.weights}")
        return [
            (c, n, math.log(p) - math.log(n))
            for c, n, p in zip(self.components, counts, self.weights, strict=True)
        ]


class UnimodalExperts(torch.nn.Module):
    """The networks of the mixture models (MMVAE, MoPoE): encoders q(z|x), q(z|w) and decoders
    p(x|z), p(w|z), JMVAE's sizes (book/model.md); each model forms its joint posterior."""

    def __init__(self, cfg):
        from jmvae_core.nn.networks import BernoulliMLP, CategoricalMLP, GaussianMLP

        super().__init__()
        self.cfg = cfg
        self.q_z_x = GaussianMLP(cfg.x_dim, cfg.hidden, cfg.latent_dim)
        self.q_z_w = GaussianMLP(cfg.w_dim, cfg.hidden, cfg.latent_dim)
        self.p_x_z = BernoulliMLP(cfg.latent_dim, cfg.hidden, cfg.x_dim)
        self.p_w_z = CategoricalMLP(cfg.latent_dim, cfg.hidden, cfg.w_dim)

    def infer_from_x(self, x: torch.Tensor) -> Gaussian:
        return self.q_z_x(x)

    def infer_from_w(self, w: torch.Tensor) -> Gaussian:
        return self.q_z_w(w)


def proposals_with_joint(joint) -> dict:
    """A successor's estimator proposals (models.declaration.ModelSpec.proposals): its own joint
    posterior `joint(model, x, w)` and its single-modality posteriors infer_from_x / _w."""
    return {
        "xw": joint,
        "x": lambda m, x, w: m.infer_from_x(x),
        "w": lambda m, x, w: m.infer_from_w(w),
    }
