"""JMVAE's successors (config.SUCCESSORS): their objectives, their estimators on the exact
linear-Gaussian model, and their runs through the study's trainer and evaluation."""

import importlib
import math

import pytest
import torch
import torch.nn.functional as F

from jmvae_core import models
from jmvae_core.config import SUCCESSORS, ConfigError, ModelConfig, make_config
from jmvae_core.measure import estimators, generate
from jmvae_core.models import build_model
from jmvae_core.nn import networks, posteriors
from jmvae_core.nn.networks import kl_normal
from jmvae_core.training.fit import fit
from jmvae_core.training.stacked import stack_models

from .linear_gaussian import as_variant, exact_error, mean_error_in_standard_errors

D = 64  # the study's latent size


def _module(variant):
    return importlib.import_module(f"jmvae_core.models.{variant}")


def _batch(b=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.bernoulli(torch.rand(b, 784, generator=g), generator=g)
    w = F.one_hot(torch.randint(0, 10, (b,), generator=g), 10).float()
    return x, w


# --- every successor through the study's harness ------------------------------------------


@pytest.fixture(scope="module", params=SUCCESSORS)
def trained(request, mnist_small):
    """(variant, model, history): 3 smoke epochs on 1,000 genuine MNIST images."""
    cfg = make_config("smoke", variant=request.param, epochs=3, n_train=1000)
    model, history = fit(cfg, mnist_small, progress=False)
    return request.param, model, history


def test_short_training_lowers_the_loss(trained):
    variant, _, history = trained
    assert history[-1]["loss"] < history[0]["loss"] - 5.0, [h["loss"] for h in history]


def test_evaluation_gives_every_estimator_and_both_directions(trained, mnist_small):
    variant, model, _ = trained
    x, w = mnist_small.x_test[:60], mnist_small.w_test[:60]
    values = estimators.evaluate(model, x, w, k=6, n_prior=50, progress=False, precision="auto")
    assert set(values) == set(models.estimator_names(variant))
    for name, v in values.items():
        s = estimators.summarize(v)
        assert -800 < s["mean"] < 0, (name, s)
    assert values["joint"].mean() < values["marginal"].mean()  # log p(x,w) < log p(x)
    # bfloat16 was not measured for these models: "auto" keeps the decoders in float32
    assert estimators.resolve_precision("auto", model, "cpu") == "fp32"
    arrays = generate.figure_arrays(model, x, w, seed=1)
    assert arrays["label_to_image"].shape == (10, generate.N_PER_LABEL, 784)
    assert arrays["joint_images"].shape == (generate.N_JOINT, 784)
    accuracy = estimators.label_accuracy(model, x, w)
    assert set(accuracy) == {"w_from_x", "w_from_xw"}
    assert 0 <= generate.coherence(model, torch.Generator().manual_seed(2), n=5) <= 1


@pytest.mark.parametrize("variant", SUCCESSORS)
def test_run_ids_and_batched_training(variant):
    cfg = make_config("quick", variant=variant, alpha=0.5)
    assert cfg.model.alpha == 0.0 and cfg.run_id.startswith(f"{variant}-z64-s1-")
    with pytest.raises(ConfigError, match=f"train {variant} with train.fit"):
        stack_models([build_model(cfg.model)])


# --- MVAE ------------------------------------------------------------------------------------


def test_mvae_objective_is_the_sum_of_its_three_elbos():
    model = build_model(ModelConfig(variant="mvae"))
    x, w = _batch()
    eps = torch.randn(8, 3 * D, generator=torch.Generator().manual_seed(3))
    terms = models.spec("mvae").objective(model, x, w, eps, beta=0.5)
    e_x, e_w = model.expert_x(x), model.expert_w(w)
    total = 0.0
    for i, (experts, mods) in enumerate([([e_x, e_w], "xw"), ([e_x], "x"), ([e_w], "w")]):
        # the product of Gaussian experts, written out: precisions add
        precision = 1.0 + sum(1.0 / v for _, v in experts)
        mu = sum(m / v for m, v in experts) / precision
        z = mu + precision.rsqrt() * eps[:, i * D : (i + 1) * D]
        rec = model.p_x_z.log_prob(x, z) if "x" in mods else 0.0
        rec = rec + (model.p_w_z.log_prob(w, z) if "w" in mods else 0.0)
        total = total + rec - 0.5 * kl_normal(mu, 1.0 / precision)
    torch.testing.assert_close(terms["loss"], -total.mean(), rtol=0, atol=1e-3)


def _mvae():
    """MVAE on the linear-Gaussian model; its experts are the likelihood factors, so that
    each product with the prior expert is the exact posterior."""
    model = as_variant("mvae")
    model.expert_x = lambda x: model.likelihood_factor(x=x)
    model.expert_w = lambda w: model.likelihood_factor(w=w)
    return model


def _poe_without_prior_precision(experts, prior=True):
    """A deliberate error: the prior expert's precision is left out of the precision sum."""
    return posteriors.product_of_experts(experts, prior=False)


@pytest.mark.parametrize("broken", [False, True], ids=["poe", "broken_poe"])
@pytest.mark.parametrize(("name", "target"), [("joint", "joint"), ("pseudo_marginal", "marginal")])
def test_mvae_estimators_with_the_poe_posterior_are_exact(name, target, broken, monkeypatch):
    """q(z|x,w) and q(z|x) are the exact posteriors of their targets: every importance weight
    is the likelihood, whatever k. An error in the PoE's precision sum breaks this."""
    if broken:
        monkeypatch.setattr(_module("mvae"), "product_of_experts", _poe_without_prior_precision)
    error = exact_error(_mvae(), name, target)
    assert (error > 1e-3) if broken else (error < 1e-9), error


@pytest.mark.parametrize(
    ("name", "target"),
    [("marginal", "marginal"), ("conditional", "conditional"),
     ("pseudo_conditional", "conditional")],
)  # fmt: skip
def test_mvae_inexact_proposals_are_within_their_standard_error(name, target):
    t = mean_error_in_standard_errors(_mvae(), name, target)
    assert abs(t) < 3, t


# --- MMVAE -----------------------------------------------------------------------------------


def _mmvae_parts(model, x, w, eps, k):
    """The log-weights (2, K, B) written out, with q(z|x,w)'s parameters held fixed."""
    experts = [model.q_z_x(x), model.q_z_w(w)]
    noise = eps.view(eps.shape[0], 2, k, D).permute(1, 2, 0, 3)
    z = torch.stack([mu + var.sqrt() * noise[m] for m, (mu, var) in enumerate(experts)])
    fixed = posteriors.Mixture([(mu.detach(), var.detach()) for mu, var in experts])
    log_w = (
        model.p_x_z.log_prob(x.expand(2, k, *x.shape), z)
        + model.p_w_z.log_prob(w, z)
        + networks.Gaussian(torch.zeros_like(z), torch.ones_like(z)).log_prob(z)
        - fixed.log_prob(z)
    )
    return log_w


@pytest.mark.parametrize("k", [1, 3])
def test_mmvae_loss_is_the_stratified_bound_with_dreg_gradients(k):
    """Value: -(1/2) sum_m logmeanexp_k log-weight. Gradients (Tucker et al. 2019): decoders
    sum_k w~_k grad log-weight_k; encoders, through the draws only, sum_k w~_k^2 grad."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(variant="mmvae", hidden=32, latent_dim=D)).double()
    x, w = (t.double() for t in _batch())
    eps = torch.randn(8, 2 * k * D, generator=torch.Generator().manual_seed(1), dtype=torch.double)
    loss = _module("mmvae").mmvae_loss(model, x, w, eps, k=k)["loss"]
    log_w = _mmvae_parts(model, x, w, eps, k)
    bound = (torch.logsumexp(log_w, 1) - math.log(k)).mean(0).mean()
    torch.testing.assert_close(loss, -bound, rtol=0, atol=1e-9)

    loss.backward()
    ours = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    weight = torch.softmax(log_w, 1).detach()
    decoders = [p for n, p in model.named_parameters() if n.startswith("p_")]
    encoders = [p for n, p in model.named_parameters() if n.startswith("q_")]
    grad_dec = torch.autograd.grad(-bound, decoders, retain_graph=True)
    grad_enc = torch.autograd.grad(-(weight**2 * log_w).sum(1).mean(0).mean(), encoders)
    names = [n for n, _ in model.named_parameters()]
    dec_names = [n for n in names if n.startswith("p_")]
    enc_names = [n for n in names if n.startswith("q_")]
    for name, g in [*zip(dec_names, grad_dec, strict=True), *zip(enc_names, grad_enc, strict=True)]:
        torch.testing.assert_close(ours[name], g, rtol=1e-9, atol=1e-12, msg=name)


def _mmvae(joint_for=None):
    """MMVAE on the linear-Gaussian model with the exact unimodal posteriors as encoders; with
    `joint_for` = (x, w), both encoders return the exact p(z|x,w) of those data instead."""
    model = as_variant("mmvae")
    if joint_for is None:
        model.q_z_x = lambda x: model.posterior(x, None)
        model.q_z_w = lambda w: model.posterior(None, w)
    else:
        model.q_z_x = lambda x: model.posterior(x, joint_for[1])
        model.q_z_w = lambda w: model.posterior(joint_for[0], w)
    return model


def test_mmvae_estimators_exact_where_the_proposal_is_the_posterior():
    assert exact_error(_mmvae(), "pseudo_marginal", "marginal") < 1e-9  # q(z|x) = p(z|x)
    model = _mmvae()
    x, w = model.sample(64)  # the data exact_error draws
    # a mixture of two copies of the exact p(z|x,w): stratified draws, exact joint
    assert exact_error(_mmvae(joint_for=(x, w)), "joint", "joint", k=6) < 1e-9


@pytest.mark.parametrize(
    ("name", "target"),
    [("joint", "joint"), ("marginal", "marginal"), ("conditional", "conditional"),
     ("pseudo_conditional", "conditional")],
)  # fmt: skip
def test_mmvae_mixture_proposal_is_within_its_standard_error(name, target):
    t = mean_error_in_standard_errors(_mmvae(), name, target)
    assert abs(t) < 3, t


def test_mmvae_wrong_mixture_weights_fail_the_standard_error_check(monkeypatch):
    """A deliberate error: the mixture's density weighs q(z|x) 0.8 and q(z|w) 0.2 while the
    draws are stratified half and half."""
    monkeypatch.setattr(posteriors.Mixture, "log_weights", lambda self: [-0.2231, -1.6094])
    t = mean_error_in_standard_errors(_mmvae(), "joint", "joint")
    assert abs(t) > 3, t


# --- MoPoE -----------------------------------------------------------------------------------


def test_mopoe_objective_is_the_mean_of_the_subsets_elbos():
    """Reconstruction under the mixture, one draw per subset; KL: the subsets' KLs averaged."""
    model = build_model(ModelConfig(variant="mopoe"))
    x, w = _batch()
    eps = torch.randn(8, 3 * D, generator=torch.Generator().manual_seed(3))
    terms = models.spec("mopoe").objective(model, x, w, eps, beta=0.5)
    (mu_x, var_x), (mu_w, var_w) = model.q_z_x(x), model.q_z_w(w)
    precision = 1.0 + 1.0 / var_x + 1.0 / var_w  # the full subset: with the prior expert
    subsets = [(mu_x, var_x), (mu_w, var_w), ((mu_x / var_x + mu_w / var_w) / precision,
                                              1.0 / precision)]  # fmt: skip
    elbos = []
    for i, (mu, var) in enumerate(subsets):
        z = mu + var.sqrt() * eps[:, i * D : (i + 1) * D]
        rec = model.p_x_z.log_prob(x, z) + model.p_w_z.log_prob(w, z)
        elbos.append(rec - 0.5 * kl_normal(mu, var))
    torch.testing.assert_close(terms["loss"], -(sum(elbos) / 3).mean(), rtol=0, atol=1e-3)


def _mopoe(factors=False):
    """MoPoE on the linear-Gaussian model: encoders the exact unimodal posteriors, or (with
    `factors`) the likelihood factors, which make its {x,w} subset's PoE the exact p(z|x,w)
    (but not a proposal: w's factor is flat in the third dimension)."""
    model = as_variant("mopoe")
    if factors:
        model.q_z_x = lambda x: model.likelihood_factor(x=x)
        model.q_z_w = lambda w: model.likelihood_factor(w=w)
    else:
        model.q_z_x = lambda x: model.posterior(x, None)
        model.q_z_w = lambda w: model.posterior(None, w)
    return model


@pytest.mark.parametrize("broken", [False, True], ids=["poe", "broken_poe"])
def test_mopoe_full_subset_is_the_exact_posterior(broken, monkeypatch):
    """The mixture stays a valid proposal whatever its components, so an error in the PoE's
    precision sum cannot bias its estimates: it is caught here, on the component itself (and
    by MVAE's exact estimators, which share product_of_experts)."""
    if broken:
        monkeypatch.setattr(_module("mopoe"), "product_of_experts", _poe_without_prior_precision)
    model = _mopoe(factors=True)
    x, w = model.sample(64)
    full = _module("mopoe").subset_posteriors(model, x, w)[2]
    exact = torch.stack(model.posterior(x, w))
    error = float((torch.stack(tuple(full)) - exact).abs().max())
    assert (error > 1e-3) if broken else (error < 1e-12), error


def test_mopoe_single_input_marginal_is_exact():
    assert exact_error(_mopoe(), "pseudo_marginal", "marginal") < 1e-9  # q(z|{x}) = p(z|x)


@pytest.mark.parametrize(
    ("name", "target"),
    [("joint", "joint"), ("marginal", "marginal"), ("conditional", "conditional"),
     ("pseudo_conditional", "conditional")],
)  # fmt: skip
def test_mopoe_mixture_proposal_is_within_its_standard_error(name, target):
    t = mean_error_in_standard_errors(_mopoe(), name, target)
    assert abs(t) < 3, t


def test_mopoe_wrong_mixture_weights_fail_the_standard_error_check(monkeypatch):
    """A deliberate error: the density weighs the subsets 0.6 / 0.2 / 0.2 while the draws are
    stratified in thirds."""
    monkeypatch.setattr(posteriors.Mixture, "log_weights", lambda self: [-0.5108, -1.6094, -1.6094])
    t = mean_error_in_standard_errors(_mopoe(), "joint", "joint")
    assert abs(t) > 3, t
