"""Face-image models of book/celeba.md: shapes, Gaussian log-densities, the GAN's three updates."""

import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from jmvae_core import models
from jmvae_core.config import IMAGE_VARIANTS, ConfigError, make_config
from jmvae_core.measure import estimators
from jmvae_core.models import build_model
from jmvae_core.training.fit import _step, fit, make_optimizers
from jmvae_core.training.gan import parameter_groups

W_DIM = 5


def face_cfg(variant="jmvae_kl_gan", **kw):
    return make_config(
        "smoke", dataset="celeba", variant=variant, w_dim=W_DIM, width=2, latent_dim=4, **kw
    )


def batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 64, 64, generator=g)
    w = torch.randint(0, 2, (n, W_DIM), generator=g).float() * 2 - 1
    return x, w


@pytest.mark.parametrize("variant", IMAGE_VARIANTS)
def test_every_variant_builds_infers_and_generates(variant):
    model = build_model(face_cfg(variant).model).eval()
    x, w = batch()
    if model.q_z_xw is not None:
        mu, var = model.q_z_xw(x, w)
        assert mu.shape == (6, 4) and bool((var > 0).all())
    z = torch.randn(3, 6, 4)
    assert model.generate(z, w).shape == (3, 6, 3, 64, 64)
    assert (model.d is not None) == variant.endswith("_gan")


def test_gaussian_image_log_prob_conventions_match_torch():
    model = build_model(face_cfg("jmvae_kl_face").model).eval()
    x, w = batch()
    z = torch.randn(2, 6, 4)
    mean = model.p_x_z.mean(z)
    per_pixel = torch.distributions.Normal(mean, 1.0).log_prob(x)
    plain = model.p_x_z.log_prob(x, z, "sum")
    code = model.p_x_z.log_prob(x, z, "channel_mean")
    torch.testing.assert_close(plain, per_pixel.sum((-1, -2, -3)))
    torch.testing.assert_close(code, per_pixel.sum((-1, -2)).mean(-1))
    torch.testing.assert_close(code, plain / 3)  # three channels
    pw = torch.distributions.Normal(model.p_w_z.mean(z), 1.0).log_prob(w).sum(-1)
    torch.testing.assert_close(model.p_w_z.log_prob(w, z), pw)


def test_face_estimators_report_both_conventions():
    torch.manual_seed(0)
    model = build_model(face_cfg("jmvae_kl_gan").model).eval()
    x, w = batch()
    out = estimators.estimate(model, x, w, k=3, n_prior=5)
    names = set(models.estimator_names("jmvae_kl_gan"))
    assert set(out) == names and "marginal_channel_mean" in names
    # with k = 1 and a shared draw, the two conventions differ exactly by the pixel terms
    g1, g2 = (torch.Generator().manual_seed(3) for _ in range(2))
    a = estimators.estimate(model, x, w, ["marginal"], k=1, generator=g1)["marginal"]
    b = estimators.estimate(model, x, w, ["marginal_channel_mean"], k=1, generator=g2)
    mu, var = model.q_z_xw(x, w)
    z = mu + var.sqrt() * torch.randn(mu.shape, generator=torch.Generator().manual_seed(3))
    gap = model.p_x_z.log_prob(x, z, "sum") - model.p_x_z.log_prob(x, z, "channel_mean")
    torch.testing.assert_close(a - b["marginal_channel_mean"], gap.double(), rtol=1e-5, atol=1e-3)
    assert bool(torch.isfinite(a).all())


def test_gan_updates_touch_only_their_group():
    """Update (1) leaves the decoder and D alone, (2) only the decoder, (3) only D."""
    cfg = face_cfg("jmvae_kl_gan")
    model = build_model(cfg.model).train()
    groups = parameter_groups(model)
    n_all = sum(1 for _ in model.parameters())
    assert sum(len(p) for p in groups.values()) == n_all
    optimizers = make_optimizers(model, cfg.train, torch.device("cpu"))
    before = {name: [p.detach().clone() for p in ps] for name, ps in groups.items()}
    x, w = batch()
    terms = _step(model, optimizers, x, w, torch.Generator().manual_seed(0), 1.0, 1.0, cfg.train)
    assert {"loss", "dec_loss", "d_loss", "kl_x", "kl_w"} <= set(terms)
    for name, ps in groups.items():
        changed = [not torch.equal(p, q) for p, q in zip(ps, before[name], strict=True)]
        assert any(changed), f"group {name} was not updated"
    # each optimizer holds exactly its own group
    for name, opt in optimizers.items():
        assert {id(p) for p in opt.param_groups[0]["params"]} == {id(p) for p in groups[name]}


def test_alpha_kept_for_kl_gan_and_dropped_elsewhere():
    assert face_cfg("jmvae_kl_gan").model.alpha == 0.1
    assert face_cfg("jmvae_gan").model.alpha == 0.0
    with pytest.raises(ConfigError, match="does not apply"):
        make_config("smoke", dataset="celeba", variant="cvae")
    with pytest.raises(ConfigError, match="does not apply"):
        make_config("smoke", variant="vae_gan")


@dataclass
class Faces:
    x_train: torch.Tensor
    w_train: torch.Tensor


def test_gan_fit_resumes_exactly(tmp_path):
    """Two epochs in one go equal one epoch, a stop, and a resume from the checkpoint."""
    x, w = batch(n=200, seed=1)
    data = Faces(x, w)
    cfg = face_cfg("cmma_gan", epochs=2, batch_size=100, warmup_epochs=2)
    whole, hist_whole = fit(cfg, data, tmp_path / "a", progress=False)
    cfg1 = face_cfg("cmma_gan", epochs=1, batch_size=100, warmup_epochs=2)
    fit(cfg1, data, tmp_path / "b", progress=False)
    resumed, hist = fit(cfg, data, tmp_path / "b", progress=False)
    assert [round(r["d_loss"], 6) for r in hist] == [round(r["d_loss"], 6) for r in hist_whole]
    for p, q in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q)
    assert all(math.isfinite(r["loss"]) for r in hist)


def test_attribute_faces_without_any_test_example_are_black_and_counted():
    from types import SimpleNamespace

    from jmvae_core.measure.faces import face_arrays

    model = build_model(face_cfg("jmvae_kl_gan").model).eval()
    x, w = batch(n=6)
    w[:, 2] = -1  # attribute 2 absent from every test face
    data = SimpleNamespace(
        x_test=x, w_test=w, attribute_names=[f"a{i}" for i in range(W_DIM)],
        mean=np.zeros((3, 64, 64), np.float32), std=np.ones((3, 64, 64), np.float32),
    )  # fmt: skip
    arrays = face_arrays(model, data)
    assert arrays["attribute_counts"][2] == 0 and arrays["attribute_faces"][2].max() == 0
    assert arrays["attribute_faces"].shape == (W_DIM, 64, 64, 3)
