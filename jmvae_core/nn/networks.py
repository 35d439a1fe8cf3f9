"""MLP building blocks (book/model.md) returning distributions, and their log-densities.

Shapes: `z` may carry leading sample dimensions, `(..., B, D)`; data tensors are `(B, X)` and
broadcast against them. Log-densities are summed over the event dimension, giving `(..., B)`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

LOG_2PI = math.log(2 * math.pi)


def glorot_(module: nn.Module) -> nn.Module:
    """Lasagne's default initialisation of dense and conv layers: Glorot-uniform weights, zero
    biases (book/model.md, book/celeba.md)."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return module


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear+ReLU layers through `sizes` (every layer is followed by a ReLU)."""
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(n_in, n_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def log_normal(z: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(var)) summed over the last dimension: (..., B, D) -> (..., B)."""
    return -0.5 * (LOG_2PI + var.log() + (z - mu).pow(2) / var).sum(-1)


def log_std_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension: (..., B, D) -> (..., B)."""
    return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)


def kl_normal(mu_q, var_q, mu_p=None, var_p=None) -> torch.Tensor:
    """Analytic KL(N(mu_q, var_q) || N(mu_p, var_p)), diagonal, summed over D: (B, D) -> (B,).

    With mu_p, var_p omitted the second distribution is the standard normal prior.
    """
    if mu_p is None:
        return 0.5 * (var_q + mu_q.pow(2) - 1.0 - var_q.log()).sum(-1)
    return 0.5 * (var_p.log() - var_q.log() + (var_q + (mu_q - mu_p).pow(2)) / var_p - 1.0).sum(-1)


class Gaussian(NamedTuple):
    """A diagonal Gaussian N(mu, diag(var)), what every encoder returns: it draws (`rsample`,
    `sample`), scores (`log_prob`) and has an analytic KL to the prior (`kl_to_prior`, the fast
    path of the objectives), and `kl_to` another diagonal Gaussian."""

    mu: torch.Tensor
    var: torch.Tensor

    @property
    def mean(self) -> torch.Tensor:
        return self.mu

    def rsample(self, eps: torch.Tensor) -> torch.Tensor:
        """Reparameterised draw mu + sqrt(var) * eps for given standard-normal noise eps."""
        return self.mu + self.var.sqrt() * eps

    def sample(self, generator: torch.Generator | None, n: int | None = None) -> torch.Tensor:
        """One draw (B, D), or n draws (n, B, D), from `generator`."""
        shape = self.mu.shape if n is None else (n, *self.mu.shape)
        eps = torch.randn(shape, generator=generator, device=self.mu.device, dtype=self.mu.dtype)
        return self.rsample(eps)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; mu, var) summed over D: z (..., B, D) -> (..., B)."""
        return log_normal(z, self.mu, self.var)

    def kl_to_prior(self) -> torch.Tensor:
        """Analytic KL(N(mu, var) || N(0, I)) summed over D: -> (..., B) (the fast path)."""
        return kl_normal(self.mu, self.var)

    def kl_to(self, other: Gaussian) -> torch.Tensor:
        """Analytic KL(self || other) between diagonal Gaussians, summed over D: -> (..., B)."""
        return kl_normal(self.mu, self.var, other.mu, other.var)


class GaussianHead(nn.Module):
    """Mean (linear) and variance (softplus) of a diagonal Gaussian, as the authors' code."""

    def __init__(self, hidden: int, latent: int):
        super().__init__()
        self.mean = nn.Linear(hidden, latent)
        self.var = nn.Linear(hidden, latent)

    def forward(self, h: torch.Tensor) -> Gaussian:
        return Gaussian(self.mean(h), F.softplus(self.var(h)))


class GaussianMLP(nn.Module):
    """q(z|x), q(z|w) or p(z|w): input -> hidden -> hidden -> (mean, variance)."""

    def __init__(self, n_in: int, hidden: int, latent: int):
        super().__init__()
        self.trunk = mlp([n_in, hidden, hidden])
        self.head = GaussianHead(hidden, latent)

    def forward(self, inp: torch.Tensor) -> Gaussian:
        return self.head(self.trunk(inp))


class JointGaussianMLP(nn.Module):
    """q(z|x,w): x -> hidden and w -> hidden, concatenated -> hidden -> (mean, variance)."""

    def __init__(self, x_dim: int, w_dim: int, hidden: int, latent: int):
        super().__init__()
        self.x_branch = mlp([x_dim, hidden])
        self.w_branch = mlp([w_dim, hidden])
        self.trunk = mlp([2 * hidden, hidden])
        self.head = GaussianHead(hidden, latent)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> Gaussian:
        h = torch.cat([self.x_branch(x), self.w_branch(w)], dim=-1)
        return self.head(self.trunk(h))


class BernoulliMLP(nn.Module):
    """p(x|z): z -> hidden -> hidden -> logits of independent Bernoulli pixels."""

    def __init__(self, latent: int, hidden: int, x_dim: int, cond_dim: int = 0):
        super().__init__()
        self.trunk = mlp([latent + cond_dim, hidden, hidden])
        self.out = nn.Linear(hidden, x_dim)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.trunk(z))

    def log_prob(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) = sum_d x_d a_d - softplus(a_d): x (B, X), z (..., B, D) -> (..., B).

        With many samples per example (z.dim() > x.dim(), the estimators) the sum is taken by
        `bernoulli_log_prob_sum`, in float32 even when the layers ran in bfloat16. Exact,
        without the code's eps=1.19e-7 inside logs.
        """
        a = self.out(self.trunk(z))
        if z.dim() > x.dim():
            return bernoulli_log_prob_sum(a, x)
        return (x * a).sum(-1) - F.softplus(a).sum(-1)


def bernoulli_log_prob_sum(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """sum_d log Bernoulli(x_d | sigmoid(a_d)) in float32: a (..., B, X), x (B, X) -> (..., B).

    With t = (2x - 1) a, each term is log sigmoid(t) = min(t, 0) + log sigmoid(|t|), and
    |t| = |a|. The second part lies in [log 1/2, 0], so products of up to 64 of its
    sigmoids stay above 2^-64: the logarithm (the slow part, ~20x slower than sigmoid on a
    CPU) is taken once per group of 2^m pixels instead of once per pixel. Both parts use
    the same (possibly bfloat16-rounded) logits, so a rounding error d in a_d moves the term
    by only d (sigmoid(a_d) - x_d): nearly nothing where the model is confident.
    """
    t = a * (2 * x - 1).to(torch.float32)  # float32 even for bfloat16 logits
    hard = t.clamp_max(0).sum(-1)
    s = t.abs_().sigmoid_()  # in place: this tensor is the largest of an evaluation
    group = 1
    while s.shape[-1] % 2 == 0 and group < 64:  # MNIST: 784 -> 49 products of 16 pixels
        half = s.shape[-1] // 2
        s = s[..., :half] * s[..., half:]
        group *= 2
    return hard + s.log_().sum(-1)


class CategoricalMLP(nn.Module):
    """p(w|z): z -> hidden -> hidden -> softmax over the classes (one-hot w)."""

    def __init__(self, latent: int, hidden: int, w_dim: int):
        super().__init__()
        self.trunk = mlp([latent, hidden, hidden])
        self.out = nn.Linear(hidden, w_dim)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.trunk(z))

    def log_prob(self, w: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(w|z) for one-hot w: w (B, W), z (..., B, D) -> (..., B)."""
        return (w * F.log_softmax(self.logits(z), dim=-1)).sum(-1)


class ConditionalBernoulliMLP(nn.Module):
    """CVAE's p(x|z,w): w -> hidden, concat(z, h_w) -> hidden -> hidden -> Bernoulli logits."""

    def __init__(self, latent: int, w_dim: int, hidden: int, x_dim: int):
        super().__init__()
        self.w_branch = mlp([w_dim, hidden])
        self.decoder = BernoulliMLP(latent, hidden, x_dim, cond_dim=hidden)

    def _input(self, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        h_w = self.w_branch(w).expand(*z.shape[:-1], -1)
        return torch.cat([z, h_w], dim=-1)

    def logits(self, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.decoder.logits(self._input(z, w))

    def log_prob(self, x: torch.Tensor, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """log p(x|z,w): x (B, X), z (..., B, D), w (B, W) -> (..., B)."""
        return self.decoder.log_prob(x, self._input(z, w))


def draw_noise(generator: torch.Generator | None, x: torch.Tensor, latent_dim: int):
    """One run's noise eps (B, D) for a batch x (B, ...), in the dtype its encoders return.

    Under autocast the encoders return bfloat16, and the noise is drawn in bfloat16, as
    networks.Gaussian.sample draws it in the dtype of the mean.
    """
    dtype = x.dtype
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
    return torch.randn((x.shape[0], latent_dim), generator=generator, device=x.device, dtype=dtype)
