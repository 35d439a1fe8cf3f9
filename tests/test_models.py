"""Networks, models and objectives: shapes, closed forms, and the alpha=0 reduction."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from jmvae_core.config import VARIANTS, ModelConfig
from jmvae_core.models import build_model
from jmvae_core.models.paper import OBJECTIVES, jmvae_kl_loss, jmvae_loss
from jmvae_core.nn.networks import BernoulliMLP, kl_normal, log_normal, log_std_normal


def _batch(b=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.bernoulli(torch.rand(b, 784, generator=g), generator=g)
    w = F.one_hot(torch.randint(0, 10, (b,), generator=g), 10).float()
    return x, w


def _eps(seed, b=8, latent=64):
    """The objectives' noise for a batch of `b` (one sample per example), from `seed`."""
    return torch.randn(b, latent, generator=torch.Generator().manual_seed(seed))


def _gaussians(shape=(5, 7), seed=0):
    g = torch.Generator().manual_seed(seed)
    mu_q, mu_p = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    var_q, var_p = torch.rand(shape, generator=g) + 0.1, torch.rand(shape, generator=g) + 0.1
    return mu_q, var_q, mu_p, var_p


def test_analytic_kl_equals_torch_distributions():
    mu_q, var_q, mu_p, var_p = _gaussians()
    q, p = Normal(mu_q, var_q.sqrt()), Normal(mu_p, var_p.sqrt())
    torch.testing.assert_close(kl_normal(mu_q, var_q, mu_p, var_p), kl_divergence(q, p).sum(-1))
    std = Normal(torch.zeros_like(mu_q), torch.ones_like(mu_q))
    torch.testing.assert_close(kl_normal(mu_q, var_q), kl_divergence(q, std).sum(-1))


def test_gaussian_log_densities_equal_torch_distributions():
    mu, var, z, _ = _gaussians()
    torch.testing.assert_close(log_normal(z, mu, var), Normal(mu, var.sqrt()).log_prob(z).sum(-1))
    torch.testing.assert_close(log_std_normal(z), Normal(0.0, 1.0).log_prob(z).sum(-1))


def test_bernoulli_log_prob_equals_bce_with_and_without_sample_dims():
    dec = BernoulliMLP(latent=4, hidden=16, x_dim=30)
    x = torch.bernoulli(torch.rand(6, 30))
    z = torch.randn(3, 6, 4)  # 3 samples for each of 6 examples: the folded path
    expected = -F.binary_cross_entropy_with_logits(
        dec.logits(z), x.expand(3, 6, 30), reduction="none"
    ).sum(-1)
    torch.testing.assert_close(dec.log_prob(x, z), expected)
    torch.testing.assert_close(dec.log_prob(x, z[0]), expected[0])  # the direct path


@pytest.mark.parametrize("variant", VARIANTS)
def test_encoders_return_positive_variances_of_the_latent_size(variant):
    model = build_model(ModelConfig(variant=variant, latent_dim=2))
    x, w = _batch()
    enc = model.infer_from_x(x) if variant == "vae" else model.q_z_xw(x, w)
    assert enc[0].shape == enc[1].shape == (8, 2)
    assert bool((enc[1] > 0).all())


def test_glorot_uniform_weights_and_zero_biases():
    model = build_model(ModelConfig(variant="jmvae_kl"))
    for layer in model.modules():
        if isinstance(layer, torch.nn.Linear):
            layer.requires_grad_(False)
            bound = math.sqrt(6.0 / (layer.in_features + layer.out_features))
            assert float(layer.weight.abs().max()) <= bound
            assert float(layer.weight.abs().max()) > 0.9 * bound
            assert float(layer.bias.abs().max()) == 0.0


def test_layer_sizes_follow_the_authors_mnist_code():
    m = build_model(ModelConfig(variant="jmvae_kl"))
    assert [p.shape for p in m.q_z_xw.parameters()][::2] == [
        (512, 784),
        (512, 10),
        (512, 1024),
        (64, 512),
        (64, 512),
    ]
    assert [p.shape for p in m.p_x_z.parameters()][::2] == [(512, 64), (512, 512), (784, 512)]
    assert [p.shape for p in m.p_w_z.parameters()][::2] == [(512, 64), (512, 512), (10, 512)]
    cvae = build_model(ModelConfig(variant="cvae"))
    assert cvae.p_x_zw.decoder.trunk[0].in_features == 64 + 512  # concat(z, h_w)


def test_alpha_zero_reduces_jmvae_kl_to_the_joint_elbo():
    model = build_model(ModelConfig(variant="jmvae_kl", alpha=0.0))
    x, w = _batch()
    kl = jmvae_kl_loss(model, x, w, _eps(5))
    joint = jmvae_loss(model, x, w, _eps(5))
    torch.testing.assert_close(kl["loss"], joint["loss"], rtol=0, atol=0)
    assert (
        float((kl["kl_x"] + kl["kl_w"]).detach()) > 0
    )  # the unimodal terms exist but carry weight 0


def test_jmvae_kl_adds_alpha_times_both_unimodal_kls_and_trains_every_network():
    model = build_model(ModelConfig(variant="jmvae_kl", alpha=0.5))
    x, w = _batch()
    kl = jmvae_kl_loss(model, x, w, _eps(5))
    joint = jmvae_loss(model, x, w, _eps(5))
    torch.testing.assert_close(kl["loss"], joint["loss"] + 0.5 * (kl["kl_x"] + kl["kl_w"]))
    kl["loss"].backward()
    for name in ("q_z_xw", "q_z_x", "q_z_w", "p_x_z", "p_w_z"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is not None and float(g.abs().sum()) > 0 for g in grads), name


def test_cmma_has_both_kl_terms_unless_switched_off():
    x, w = _batch()
    with_prior = build_model(ModelConfig(variant="cmma"))
    terms = OBJECTIVES["cmma"](with_prior, x, w, _eps(1))
    torch.testing.assert_close(terms["loss"], terms["rec_x"] + terms["kl_cond"] + terms["kl_prior"])
    assert float(terms["kl_prior"].detach()) > 0
    without = build_model(ModelConfig(variant="cmma", cmma_prior_kl=False))
    terms = OBJECTIVES["cmma"](without, x, w, _eps(1), beta=0.5)
    torch.testing.assert_close(terms["loss"], terms["rec_x"] + 0.5 * terms["kl_cond"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_warmup_beta_scales_only_the_prior_kl(variant):
    model = build_model(ModelConfig(variant=variant))
    x, w = _batch()
    full = OBJECTIVES[variant](model, x, w, _eps(2), beta=1.0)
    half = OBJECTIVES[variant](model, x, w, _eps(2), beta=0.5)
    prior_terms = full["kl_prior"] + full.get("kl_cond", 0.0)
    # float32 losses of ~550 nats: compare to 1e-3 nats
    torch.testing.assert_close(full["loss"] - half["loss"], 0.5 * prior_terms, rtol=0, atol=1e-3)
