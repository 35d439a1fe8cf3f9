import math

import pytest

from jmvae_core.config import ConfigError, ModelConfig, RunConfig, make_config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"variant": "jmvae_foo"}, r"variant='jmvae_foo' is unknown; allowed: vae, cvae, cmma"),
        ({"alpha": -0.1}, r"alpha=-0.1 must be >= 0"),
        ({"alpha": math.nan}, r"alpha=nan must be a finite number"),
        ({"alpha": math.inf}, r"alpha=inf must be a finite number"),
        ({"latent_dim": 0}, r"latent_dim=0 must be a positive integer"),
        ({"epochs": 0}, r"epochs=0 must be a positive integer"),
        ({"k": 0}, r"k=0 must be a positive integer"),
        ({"n_judged": 0}, r"n_judged=0 must be a positive integer"),
        ({"learning_rate": 1.0}, r"learning_rate= is not a configuration field"),
        ({"dataset": "svhn"}, r"dataset='svhn' is unknown"),
        ({"precision": "fp16"}, r"precision='fp16' is unknown; allowed: fp32, bf16"),
        (
            {"precision": "bf16", "dataset": "standin", "variant": "vae_gan"},
            r"measured for the MNIST MLPs only",
        ),
    ],
)
def test_bad_values_give_one_clear_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        make_config("quick", **overrides)


def test_unknown_profile_names_the_allowed_ones():
    with pytest.raises(
        ConfigError, match="profile='fast' is unknown; allowed: smoke, quick, paper"
    ):
        make_config("fast")


def test_run_id_is_stable_and_sensitive_to_every_result_field():
    base = make_config("quick", variant="jmvae_kl", alpha=0.1)
    assert base.run_id == make_config("quick", variant="jmvae_kl", alpha=0.1).run_id
    assert base.run_id.startswith("jmvae_kl-a0.1-z64-s1-")
    changes = ({"alpha": 1.0}, {"seed": 2}, {"k": 10}, {"epochs": 3}, {"clip_norm": None})
    for change in changes + ({"n_judged": 10},):
        assert make_config("quick", **change).run_id != base.run_id, change
    # the training precision: a new field that leaves the float32 runs' ids as they were
    assert base.run_id == "jmvae_kl-a0.1-z64-s1-3d4839bfad"
    bf16 = make_config("quick", variant="jmvae_kl", alpha=0.1, precision="bf16")
    assert bf16.run_id != base.run_id
    assert RunConfig.from_dict(bf16.to_dict()) == bf16
    # likewise the judge's images per digit: its default (1,000) leaves every id as it was
    assert make_config("quick", variant="jmvae_kl", alpha=0.1, n_judged=1000).run_id == base.run_id
    fewer = make_config("smoke", variant="jmvae_kl", alpha=0.1)
    assert fewer.eval.n_judged == 100 and RunConfig.from_dict(fewer.to_dict()) == fewer


def test_config_round_trips_through_a_dict():
    cfg = make_config("smoke", variant="cmma", latent_dim=2)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg


def test_profiles_set_what_the_book_promises():
    assert make_config("quick").train.epochs == 12
    assert make_config("paper").train.epochs == 500
    assert make_config("paper").eval.k == 1000 and make_config("paper").eval.n_prior == 5000
    assert make_config("smoke").eval.n_test is not None


def test_model_config_defaults_are_the_papers():
    m = ModelConfig()
    assert (m.latent_dim, m.hidden, m.x_dim, m.w_dim) == (64, 512, 784, 10)


def test_the_notebooks_rebuild_any_config_from_its_dict_and_check_its_id():
    """runs.run_parameters passes the whole config; config.notebook_config rebuilds it, with
    fields no command-line flag sets (clip_norm, hidden, betas) and through the literal
    papermill writes into the notebook; a run id that is not the config's is refused."""
    from papermill.translators import PythonTranslator

    from jmvae_core.config import notebook_config
    from jmvae_core.study.runs import Run, run_parameters

    cfg = make_config("smoke", variant="cvae", clip_norm=3.0, hidden=256, betas=(0.8, 0.99))
    params = run_parameters(Run(cfg, "smoke"), None)
    assert set(params) == {"profile", "config", "device", "run_id"}
    config = eval(PythonTranslator.translate(params["config"]))  # what the notebook reads
    assert notebook_config("smoke", config, params["run_id"]) == cfg
    assert notebook_config("smoke", None) == make_config("smoke")
    with pytest.raises(ConfigError, match=cfg.run_id):
        notebook_config("smoke", config, make_config("smoke").run_id)
