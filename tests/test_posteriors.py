"""Posterior distributions (jmvae_core.nn.posteriors): closed forms, the product of experts against
the exact linear-Gaussian posterior, and mixture proposals in the estimators."""

import math

import pytest
import torch
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal

from jmvae_core.measure.estimators import estimate
from jmvae_core.nn.networks import Gaussian
from jmvae_core.nn.posteriors import Mixture, product_of_experts

from .linear_gaussian import LinearGaussian, mean_error_in_standard_errors

DT = torch.float64


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _params(shape=(5, 4), seed=0):
    g = _gen(seed)
    return torch.randn(shape, generator=g, dtype=DT), torch.rand(shape, generator=g, dtype=DT) + 0.2


def test_gaussian_unpacks_as_mean_and_variance_and_matches_torch():
    mu, var = _params()
    q = Gaussian(mu, var)
    m, v = q  # the (mu, var) pair every encoder returns
    assert m is mu and v is var and q[0] is mu and q.mean is mu
    z = torch.randn(3, 5, 4, dtype=DT)
    normal = Independent(Normal(mu, var.sqrt()), 1)
    torch.testing.assert_close(q.log_prob(z), normal.log_prob(z))
    prior = Independent(Normal(torch.zeros_like(mu), torch.ones_like(var)), 1)
    torch.testing.assert_close(q.kl_to_prior(), torch.distributions.kl_divergence(normal, prior))
    torch.testing.assert_close(q.sample(_gen(1), 3), q.sample(_gen(1), 3))  # seeded stream
    assert q.sample(_gen(1)).shape == (5, 4) and q.sample(_gen(1), 7).shape == (7, 5, 4)


def _poe_without_prior_precision(experts, prior=True):
    """A deliberate error: the prior expert's precision is left out of the precision sum."""
    return product_of_experts(experts, prior=False)


@pytest.mark.parametrize("given", ["x", "w", "xw"])
def test_product_of_the_prior_and_likelihood_factors_is_the_exact_posterior(given):
    model = LinearGaussian()
    x, w = model.sample(50)
    xs, ws = (x if "x" in given else None), (w if "w" in given else None)
    factors = [model.likelihood_factor(x=xs)] if xs is not None else []
    factors += [model.likelihood_factor(w=ws)] if ws is not None else []
    mu, var = model.posterior(xs, ws)
    poe = product_of_experts(factors)
    torch.testing.assert_close(poe.mu, mu, rtol=0, atol=1e-12)
    torch.testing.assert_close(poe.var, var, rtol=0, atol=1e-12)
    broken = _poe_without_prior_precision(factors)
    assert not torch.allclose(broken.var, var, rtol=0, atol=1e-6)


def test_product_of_experts_is_the_normalised_product_of_densities():
    """log PoE(z) - sum of the experts' and the prior's log-densities is constant in z."""
    experts = [Gaussian(*_params((6, 3), seed=s)) for s in (1, 2, 3)]
    poe = product_of_experts(experts)
    z = torch.randn(40, 6, 3, dtype=DT, generator=_gen(4))
    product = sum(e.log_prob(z) for e in experts)
    product = product + Gaussian(torch.zeros(6, 3, dtype=DT), torch.ones(6, 3, dtype=DT)).log_prob(
        z
    )
    gap = poe.log_prob(z) - product  # (40, 6): one constant per example
    torch.testing.assert_close(gap, gap[:1].expand_as(gap), rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="at least one expert"):
        product_of_experts([], prior=False)


def test_mixture_log_prob_and_mean_match_torch():
    comps = [_params((5, 4), seed=s) for s in (1, 2, 3)]
    weights = (0.2, 0.5, 0.3)
    q = Mixture(comps, weights)
    mus = torch.stack([c[0] for c in comps], dim=-2)  # (5, 3, 4): components second to last
    sds = torch.stack([c[1].sqrt() for c in comps], dim=-2)
    ref = MixtureSameFamily(
        Categorical(probs=torch.tensor(weights, dtype=DT).expand(5, 3)),
        Independent(Normal(mus, sds), 1),
    )
    z = torch.randn(7, 5, 4, dtype=DT, generator=_gen(5))
    torch.testing.assert_close(q.log_prob(z), ref.log_prob(z))
    torch.testing.assert_close(q.mean, ref.mean)
    assert Mixture(comps).weights == pytest.approx((1 / 3,) * 3)


def test_mixture_draws_are_stratified_and_unbiased_by_construction():
    comps = [_params(seed=s) for s in (1, 2, 3)]
    for k in (3, 7, 100, 1000):
        draws = Mixture(comps).draws(k)
        counts = [n for _, n, _ in draws]
        assert sum(counts) == k and max(counts) - min(counts) <= 1
        # each draw's coefficient pi_m / k_m: the coefficients of all draws sum to one
        assert sum(n * math.exp(c) for _, n, c in draws) == pytest.approx(1.0)
    weighted = Mixture(comps[:2], (0.25, 0.75)).draws(8)
    assert [n for _, n, _ in weighted] == [2, 6]
    with pytest.raises(ValueError, match="cannot cover"):
        Mixture(comps).draws(2)
    with pytest.raises(ValueError, match="summing to 1"):
        Mixture(comps[:2], (0.5, 0.6))


# --- mixture proposals in the estimators, on the linear-Gaussian model ----------------------


def _exact_mixture_model(copies: int):
    """q(z|x,w) := a mixture of `copies` identical components, each the exact p(z|x,w)."""
    model = LinearGaussian()
    model.q_z_xw = lambda x, w: Mixture([model.posterior(x, w)] * copies)
    return model


@pytest.mark.parametrize(("copies", "k"), [(2, 6), (3, 7), (3, 1)])
def test_a_mixture_of_exact_posteriors_gives_the_exact_joint(copies, k):
    """Every importance weight is p(x,w) exactly, so the stratified estimate is exact for any k
    the components can share (k = 1 < 3 components is refused)."""
    model = _exact_mixture_model(copies)
    x, w = model.sample(64)
    if k < copies:
        with pytest.raises(ValueError, match="cannot cover"):
            estimate(model, x, w, ["joint"], k=k, generator=_gen())
        return
    est = estimate(model, x, w, ["joint"], k=k, generator=_gen())["joint"]
    torch.testing.assert_close(est, model.exact(x, w)["joint"], rtol=0, atol=1e-9)


def mixture_of_unimodal_posteriors(model):
    """q(z|x,w) := (p(z|x) + p(z|w)) / 2, an exact MMVAE's joint posterior: valid, not exact."""
    model.q_z_xw = lambda x, w: Mixture([model.posterior(x, None), model.posterior(None, w)])
    return model


@pytest.mark.parametrize("name", ["joint", "marginal", "conditional"])
def test_a_mixture_proposal_is_within_its_standard_error(name):
    t = mean_error_in_standard_errors(mixture_of_unimodal_posteriors(LinearGaussian()), name, name)
    assert abs(t) < 3, t


def test_wrong_mixture_weights_in_the_density_fail_the_standard_error_check(monkeypatch):
    """A deliberate error: the density weighs the components 0.8 / 0.2 while the draws are
    stratified 1/2 : 1/2. The check above must catch it."""
    monkeypatch.setattr(Mixture, "log_weights", lambda self: [math.log(0.8), math.log(0.2)])
    t = mean_error_in_standard_errors(mixture_of_unimodal_posteriors(LinearGaussian()), "joint",
                                      "joint")  # fmt: skip
    assert abs(t) > 3, t
