"""The model registry: the paper's models declared as before, the successors kept out of the
paper's plan, and the errors a wrong declaration gets."""

from types import SimpleNamespace

import pytest

from jmvae_core import config, models
from jmvae_core.models import build_model, paper
from jmvae_core.models.declaration import ModelSpec, via_p_z_w, via_prior_and_label, via_q_z_w
from jmvae_core.models.paper import BUILD, OBJECTIVES
from jmvae_core.pages import tables


def test_the_paper_models_are_registered_from_their_tables():
    assert models.names()[: len(config.VARIANTS)] == config.VARIANTS
    assert models.names() == config.MNIST_VARIANTS
    for v in config.VARIANTS:
        spec = models.spec(v)
        assert spec.build is BUILD[v] and spec.objective is OBJECTIVES[v]
        assert spec.estimators is paper.ESTIMATORS[v]
        assert spec.proposals is None and spec.noise_samples == 1 and spec.bf16_estimators
        assert spec.label == paper.LABELS[v] == models.label(v)
    assert models.spec("vae").label_to_image is None  # the VAE has no label -> image path
    assert models.spec("jmvae_kl").label_to_image is via_q_z_w
    assert models.spec("cmma").label_to_image is via_p_z_w
    assert models.spec("cvae").label_to_image is via_prior_and_label


def test_every_successor_is_registered_and_trained_by_name():
    for v in config.SUCCESSORS:
        spec = models.spec(v)
        assert set(spec.estimators) == set(paper.ESTIMATORS["jmvae_kl"])
        model = build_model(config.make_config("smoke", variant=v).model)
        assert type(model).__module__ == f"jmvae_core.models.{v}"
        assert model.spec is spec  # what training, the estimators and generation read
    assert v not in OBJECTIVES  # the successors' objectives live in their own files only


def test_the_paper_plan_has_no_successors_and_their_plan_has_only_them():
    for profile in config.PROFILES:
        assert {c.model.variant for c in config.plan(profile)} == set(config.VARIANTS)
        runs = config.successors_plan(profile)
        wanted = config.SUCCESSORS if profile in config.SUCCESSOR_PROFILES else ()
        assert [c.model.variant for c in runs] == [
            v for _ in config.PROFILE_SEEDS[profile] for v in wanted
        ]
        assert all(c.model.alpha == 0.0 and c.model.latent_dim == 64 for c in runs)
    assert config.successors_plan("smoke") == []  # the pipeline check stays the paper's
    with pytest.raises(config.ConfigError, match="profile='long' is unknown"):
        config.successors_plan("long")


def test_an_unknown_or_undeclared_model_is_a_clear_error():
    with pytest.raises(KeyError, match="no model 'hmvae'; registered: vae, cvae.*, vae_gan"):
        models.spec("hmvae")
    spec = models.spec("vae")
    modules = (paper, models.mvae, models.mmvae, models.mopoe, models.faces)
    assert models._registry(*modules) == models.REGISTRY  # built from the static imports
    stranger = SimpleNamespace(SPECS=(ModelSpec(**{**vars(spec), "name": "hmvae"}),))
    with pytest.raises(ValueError, match="'hmvae' is not listed in config for the 'mnist'"):
        models._registry(*modules, stranger)
    # a face model declared into the MNIST family is refused: the families are explicit lists
    misplaced = ModelSpec(**{**vars(models.spec("vae_gan")), "family": "mnist"})
    with pytest.raises(ValueError, match="'vae_gan' is not listed in config for the 'mnist'"):
        models._registry(SimpleNamespace(SPECS=(misplaced,)))
    twin = SimpleNamespace(SPECS=(ModelSpec(**{**vars(spec), "label": "another VAE"}),))
    with pytest.raises(ValueError, match="'vae' is declared twice"):
        models._registry(*modules, twin)
    with pytest.raises(RuntimeError, match="no model file declares .*'mvae'"):
        models._registry(paper, models.faces)  # a successor's file left out


def test_noise_width_follows_the_declared_draws():
    for v in models.names():
        cfg = config.make_config("smoke", variant=v).model
        assert models.spec(v).noise_dim(cfg.latent_dim) == 64 * models.spec(v).noise_samples
    face = config.make_config("smoke", variant="jmvae_kl_face", dataset="standin").model
    assert models.spec(face.variant).noise_dim(face.latent_dim) == face.latent_dim


def test_the_two_families_are_explicit_and_share_no_name():
    mnist, faces = models.names("mnist"), models.names("faces")
    assert mnist == config.MNIST_VARIANTS and faces == config.IMAGE_VARIANTS
    assert not set(mnist) & set(faces)  # "jmvae_kl" names one model only
    for v in faces:
        s = models.spec(v)
        assert s.family == "faces" and s.adversarial == v.endswith("_gan")
        assert not s.bf16_estimators  # the face decoders were never measured in bfloat16
        assert set(s.estimators) == {
            n + suffix for n in paper.ESTIMATORS[BASE[v]] for suffix in ("", "_channel_mean")
        }
    # the family decides the build: a face config gets the conv model, whatever its width
    cfg = config.make_config("smoke", variant="jmvae_kl_face", dataset="standin").model
    assert type(build_model(cfg)).__name__ == "FaceModel"
    assert type(build_model(config.make_config("smoke").model)).__name__ == "JMVAE"
    with pytest.raises(config.ConfigError, match="'jmvae_kl' does not apply to dataset='standin'"):
        config.make_config("smoke", variant="jmvae_kl", dataset="standin")


BASE = {  # the loss of each face model's encoders, and so its estimators
    "vae_gan": "vae", "cvae_gan": "cvae", "cmma_gan": "cmma", "jmvae_gan": "jmvae_zero",
    "jmvae_kl_gan": "jmvae_kl", "jmvae_kl_face": "jmvae_kl",
}  # fmt: skip


def test_tables_read_labels_and_order_from_the_registry():
    assert tables.run_label("jmvae_kl", 0.1) == "JMVAE-kl (α=0.1)"
    assert [tables.run_label(v) for v in models.names()[:4]] == [
        "VAE", "CVAE", "CMMA", "JMVAE-zero",
    ]  # fmt: skip


def test_every_encoder_returns_a_distribution():
    """Encoders return networks.Gaussian: draws, log-density and the analytic KL fast path."""
    import torch

    from jmvae_core.nn.networks import Gaussian, kl_normal, log_normal

    for family in ("mnist", "faces"):
        for v in models.names(family):
            dataset = {"mnist": "mnist", "faces": "standin"}[family]
            cfg = config.make_config("smoke", variant=v, dataset=dataset).model
            model = build_model(cfg).eval()
            if not hasattr(model, "infer_from_x"):
                continue  # the CVAE family: q(z|x,w) only, checked below
            x = torch.rand(3, cfg.x_dim) if family == "mnist" else torch.rand(3, 3, 64, 64)
            q = model.infer_from_x(x)
            assert isinstance(q, Gaussian), v
            z = q.sample(torch.Generator().manual_seed(0))
            torch.testing.assert_close(q.log_prob(z), log_normal(z, *q))
            torch.testing.assert_close(q.kl_to_prior(), kl_normal(*q))
    cvae = build_model(config.make_config("smoke", variant="cvae").model)
    assert isinstance(cvae.q_z_xw(torch.rand(2, 784), torch.eye(10)[:2]), Gaussian)
