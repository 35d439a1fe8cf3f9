"""A two-modality linear-Gaussian model whose log-likelihoods and posteriors are closed-form.

z ~ N(0, I_3); x = A z + b + N(0, sx^2 I_4); w = C z + c + N(0, sw^2 I_2). A and C have
orthogonal columns, so every posterior p(z|x,w), p(z|x), p(z|w) has a diagonal covariance and
can be represented exactly by the diagonal-Gaussian encoders the estimators expect.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
from torch.distributions import MultivariateNormal

from jmvae_core import models
from jmvae_core.measure.estimators import estimate
from jmvae_core.nn.networks import Gaussian, log_normal

DT = torch.float64


class GaussianDecoder:
    def __init__(self, weight, bias, noise_var):
        self.weight, self.bias, self.noise_var = weight, bias, noise_var

    def log_prob(self, data, z):
        mean = z @ self.weight.T + self.bias
        return log_normal(data, mean, torch.full_like(mean, self.noise_var))


class LinearGaussian:
    """Duck-typed stand-in for a JMVAE with exact (or deliberately perturbed) encoders."""

    def __init__(self, shift: float = 0.0, var_scale: float = 1.0, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(4, 3, generator=g, dtype=DT))
        self.A = q * torch.tensor([1.5, 0.8, 0.5], dtype=DT)
        self.b = torch.randn(4, generator=g, dtype=DT)
        self.C = torch.tensor([[1.2, 0.0, 0.0], [0.0, 0.7, 0.0]], dtype=DT)
        self.c = torch.tensor([0.3, -0.2], dtype=DT)
        self.sx2, self.sw2 = 0.5, 0.8
        self.p_x_z = GaussianDecoder(self.A, self.b, self.sx2)
        self.p_w_z = GaussianDecoder(self.C, self.c, self.sw2)
        self.cfg = SimpleNamespace(variant="jmvae_kl", latent_dim=3)
        self.shift, self.var_scale = shift, var_scale
        self.eval = lambda: None
        # proposals: which exact posterior each encoder returns (tests may rebind these)
        self.q_z_xw = lambda x, w: self.perturb(*self.posterior(x, w))
        self.infer_from_x = lambda x: self.perturb(*self.posterior(x, None))
        self.infer_from_w = lambda w: self.perturb(*self.posterior(None, w))

    @property
    def spec(self):
        """The declaration of the variant the model stands for (a built model's `spec`)."""
        return models.spec(self.cfg.variant)

    def perturb(self, mu, var):
        return Gaussian(mu + self.shift, var * self.var_scale)

    def posterior(self, x=None, w=None) -> Gaussian:
        """Exact p(z | the given modalities): diagonal, mean and variance (B, 3) each."""
        batch = (x if x is not None else w).shape[0]
        precision = torch.ones(3, dtype=DT)
        eta = torch.zeros(batch, 3, dtype=DT)
        if x is not None:
            precision = precision + (self.A**2).sum(0) / self.sx2
            eta = eta + (x - self.b) @ self.A / self.sx2
        if w is not None:
            precision = precision + (self.C**2).sum(0) / self.sw2
            eta = eta + (w - self.c) @ self.C / self.sw2
        var = (1.0 / precision).expand(batch, 3)
        return Gaussian(eta * var, var.clone())

    def likelihood_factor(self, x=None, w=None):
        """The Gaussian in z proportional to p(x|z) (given x) or p(w|z) (given w): (B, 3) each.

        A product-of-experts posterior whose experts are these factors and the prior expert is
        the exact posterior. A dimension the modality says nothing about (w: the third) has
        precision 0: variance infinity, mean 0.
        """
        data, weight, bias, noise = (
            (x, self.A, self.b, self.sx2) if x is not None else (w, self.C, self.c, self.sw2)
        )
        precision = (weight**2).sum(0) / noise
        informative = precision > 0
        safe = torch.where(informative, precision, torch.ones_like(precision))
        mean = torch.where(informative, (data - bias) @ weight / noise / safe, 0.0)
        var = torch.where(informative, 1.0 / safe, torch.full_like(safe, float("inf")))
        return Gaussian(mean, var.expand_as(mean).clone())

    def sample(self, n: int, seed: int = 1):
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, 3, generator=g, dtype=DT)
        x = z @ self.A.T + self.b + self.sx2**0.5 * torch.randn(n, 4, generator=g, dtype=DT)
        w = z @ self.C.T + self.c + self.sw2**0.5 * torch.randn(n, 2, generator=g, dtype=DT)
        return x, w

    def exact(self, x, w) -> dict:
        """Closed-form log p(x,w), log p(x), log p(w), log p(x|w): each (B,)."""
        cov_x = self.A @ self.A.T + self.sx2 * torch.eye(4, dtype=DT)
        cov_w = self.C @ self.C.T + self.sw2 * torch.eye(2, dtype=DT)
        cross = self.A @ self.C.T
        cov = torch.cat([torch.cat([cov_x, cross], 1), torch.cat([cross.T, cov_w], 1)], 0)
        joint = MultivariateNormal(torch.cat([self.b, self.c]), cov).log_prob(torch.cat([x, w], 1))
        px = MultivariateNormal(self.b, cov_x).log_prob(x)
        pw = MultivariateNormal(self.c, cov_w).log_prob(w)
        return {"joint": joint, "marginal": px, "log_p_w": pw, "conditional": joint - pw}


def as_variant(variant: str, **encoders) -> LinearGaussian:
    """The linear-Gaussian model under a registered variant's name, with the encoder networks
    that variant's proposals call (e.g. expert_x=...) given as functions of the data."""
    model = LinearGaussian()
    model.cfg.variant = variant
    for name, fn in encoders.items():
        setattr(model, name, fn)
    return model


def exact_error(model, name: str, target: str, n: int = 64, k: int = 5, seed: int = 0) -> float:
    """Largest |estimate - exact| over n examples of one estimator (k draws)."""
    x, w = model.sample(n)
    est = estimate(model, x, w, [name], k=k, generator=torch.Generator().manual_seed(seed))[name]
    return float((est - model.exact(x, w)[target]).abs().max())


def mean_error_in_standard_errors(model, name, target, n=400, k=200, seed=4) -> float:
    """(mean error over n examples) / (its standard error) of one estimator against the exact
    value `target` ("joint", "marginal", "conditional")."""
    x, w = model.sample(n)
    gen = torch.Generator().manual_seed(seed)
    est = estimate(model, x, w, [name], k=k, n_prior=20_000, generator=gen)[name]
    err = (est - model.exact(x, w)[target]).numpy()
    assert err.std() > 1e-4  # the proposal really is imperfect
    return float(err.mean() / (err.std(ddof=1) / math.sqrt(len(err))))
