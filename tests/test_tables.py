"""Tables and claims from synthetic metrics: layout, 'not available' cells, verdict rules."""

import pytest

from jmvae_core.pages import tables


def _run(variant, alpha=None, seed=1, latent=64, coherence=0.95, **est):
    estimators = {k: {"mean": v, "sem": 0.1, "k": 1000, "n_test": 10000} for k, v in est.items()}
    acc = {"w_from_x": 0.97, "w_from_xw": 0.99, "w_to_x_coherence": coherence}
    acc = acc if "jmvae" in variant else {}
    return {"variant": variant, "alpha": alpha, "seed": seed, "latent_dim": latent, "epochs": 20,
            "estimators": estimators, "accuracy": acc}  # fmt: skip


def _study(kl_pm=-95.0, zero_pm=-110.0, vae=-90.0, kl=-89.0, coh=0.95, joint_hi=-92.0):
    full = dict(joint=-91.0, conditional=-88.0, pseudo_conditional=-93.0)
    return [
        _run("vae", marginal=vae),
        _run("cvae", conditional=-87.0),
        _run(
            "jmvae_zero",
            marginal=-89.5,
            pseudo_marginal=zero_pm,
            **{**full, "pseudo_conditional": -112.0},
        ),
        _run("jmvae_kl", 0.01, marginal=kl, pseudo_marginal=kl_pm, **{**full, "joint": -90.0}),
        _run("jmvae_kl", 0.1, marginal=kl, pseudo_marginal=kl_pm, coherence=coh, **full),
        _run(
            "jmvae_kl", 1.0, marginal=kl - 1, pseudo_marginal=kl_pm, **{**full, "joint": joint_hi}
        ),
        _run("jmvae_kl", 0.1, latent=2, marginal=-140.0, pseudo_marginal=-150.0, **full),
    ]


def test_table1_has_one_row_per_model_and_marks_missing_estimators():
    t = tables.table1(_study())
    assert list(t.index) == ["VAE", "CVAE", "JMVAE-zero", "JMVAE-kl (α=0.01)", "JMVAE-kl (α=0.1)",
                             "JMVAE-kl (α=1)"]  # fmt: skip
    assert t.loc["JMVAE-kl (α=0.1)", "log p(x)"] == "-89.00 ± 0.10"  # latent-2 run excluded
    assert t.loc["VAE", "log p(x,w)"] == "—"


def test_spread_is_the_sd_over_seeds_when_there_are_several():
    runs = [_run("vae", seed=1, marginal=-90.0), _run("vae", seed=2, marginal=-92.0)]
    assert tables.table1(runs).loc["VAE", "log p(x)"] == "-91.00 ± 1.41 (2 seeds)"


def test_paper_table_fills_only_the_cell_the_paper_gives():
    p = tables.paper_table(_study())
    assert p.loc["JMVAE-kl (α=0.1)", "log p(x)"] == "-86.86"
    values = p.to_numpy().ravel().tolist()
    assert values.count(tables.NOT_AVAILABLE) == len(values) - 1
    gap = tables.paper_gap(_study())["jmvae_kl_0.1_marginal"]
    assert gap["gap"] == pytest.approx(-89.0 + 86.86)
