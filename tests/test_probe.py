"""The latent linear probe: the fit reaches its optimum, reads only the image-only encoder, and
scores what a linear read-out can and cannot find."""

from types import SimpleNamespace

import pytest
import torch

from jmvae_core.config import make_config
from jmvae_core.measure import probe
from jmvae_core.models import build_model


def _planted(n, d=8, classes=10, signal=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(classes, (n,), generator=g)
    centres = torch.randn(classes, d, generator=g) * signal
    return centres[y] + torch.randn(n, d, generator=g), y


def test_the_fit_reaches_the_optimum_of_its_convex_loss():
    x, y = _planted(3000, signal=0.5)  # overlapping classes: a finite, interior optimum
    fit = probe.fit_logistic(x, y)
    assert fit["grad_norm"] < 1e-6
    # any step away from the optimum raises the (strictly convex) penalised loss
    z = (x.double() - fit["mean"]) / fit["std"]
    for scale in (1e-2, -1e-2):
        w = fit["weight"] + scale * torch.randn_like(fit["weight"])
        moved = torch.nn.functional.cross_entropy(z @ w + fit["bias"], y)
        assert float(moved + probe.PENALTY * w.pow(2).sum()) > fit["loss"]


def test_separable_classes_are_read_exactly_and_unrelated_ones_at_chance():
    x, y = _planted(4000, signal=4.0)
    fit = probe.fit_logistic(x[:3000], y[:3000])
    assert float((probe.predict(fit, x[3000:]) == y[3000:]).double().mean()) > 0.99
    noise, _ = _planted(4000, seed=1)  # features drawn without the labels
    fit = probe.fit_logistic(noise[:3000], y[:3000])
    held_out = float((probe.predict(fit, noise[3000:]) == y[3000:]).double().mean())
    assert abs(held_out - 0.1) < 0.04


@pytest.mark.parametrize("variant", ["cvae", "cmma"])
def test_models_whose_only_encoder_reads_the_label_get_no_probe(variant):
    model = build_model(make_config("smoke", variant=variant).model)
    assert probe.image_encoder(model) is None  # their q(z|x,w) would hand the probe the label


@pytest.mark.parametrize("variant", ["vae", "jmvae_zero", "jmvae_kl", "mvae", "mmvae", "mopoe"])
def test_the_probe_reads_the_image_only_proposal_and_never_the_label(variant):
    torch.manual_seed(0)
    model = build_model(make_config("smoke", variant=variant).model).eval()
    x = torch.rand(6, 784).round()
    encode = probe.image_encoder(model)
    assert encode(x).shape == (6, 64)
    if variant == "jmvae_zero":  # q(z|x,0), as the single-input estimators use
        torch.testing.assert_close(encode(x), model.q_z_xw(x, torch.zeros(6, 10))[0])
    if variant == "jmvae_kl":
        torch.testing.assert_close(encode(x), model.q_z_x(x)[0])


def test_a_probe_record_on_a_small_data_set():
    torch.manual_seed(0)
    model = build_model(make_config("smoke", variant="jmvae_kl").model)
    eye = torch.eye(10)
    data = SimpleNamespace(
        x_train=torch.rand(300, 784), w_train=eye[torch.arange(300) % 10],
        x_test=torch.rand(100, 784).round(), w_test=eye[torch.arange(100) % 10],
    )  # fmt: skip
    record = probe.latent_probe(model, data)
    assert record["n_train"] == 300 and record["n_test"] == 100
    assert 0 <= record["accuracy"] <= 1 and record["grad_norm"] < 1e-5
    assert record == probe.latent_probe(model, data)  # deterministic
    assert probe.latent_probe(build_model(make_config("smoke", variant="cvae").model), data) is None


def test_the_binarised_training_images_are_drawn_once_per_images_and_seed():
    data = SimpleNamespace(x_train=torch.rand(50, 784))
    first = probe.binarized_train_images(data, 1)
    assert probe.binarized_train_images(data, 1) is first  # kept, not drawn again
    assert torch.equal(
        first, torch.bernoulli(data.x_train, generator=torch.Generator().manual_seed(1))
    )
    assert not torch.equal(probe.binarized_train_images(data, 2), first)
    same_values = SimpleNamespace(x_train=data.x_train.clone())  # another tensor: drawn anew
    again = probe.binarized_train_images(same_values, 1)
    assert again is not first and torch.equal(again, first)
