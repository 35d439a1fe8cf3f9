"""The whole plan in one step: runs of every architecture advance together (fit_batched with
several groups, draws="epoch"), each run as if its group trained alone.

Compared, run by run: every loss term of every epoch and every final weight, 5 epochs x 10
steps = 50 steps, for every variant at latent 16 and at latent 2 (10 groups, 11 runs, the
reduced width hidden 64). On one CPU thread the step of a group is the same sequence of
operations on the same tensors whether other groups step beside it or not: bitwise equal
(asserted exactly). The same comparison fails when a run's noise is swapped with another
run's or when one group's clipping is applied to another's gradients (both asserted).
Compiled (step_mode="compile"): two groups (VAE, JMVAE-kl at latent 2) together vs each
alone, both compiled, 50 steps, to COMPILED_RTOL (measured 0: the same compiled code runs).
"""

import pytest
import torch

import jmvae_core.training.batched as batched
import jmvae_core.training.batched_step as batched_step
from jmvae_core.config import VARIANTS, ConfigError, make_config
from jmvae_core.training.batched import fit_batched, split_groups
from jmvae_core.training.batched_step import differences

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread

EPOCHS = 5  # x 10 steps of 100 of the 1,000 images
COMPILED_RTOL = 1e-6


def _plan(epochs=EPOCHS, variants=VARIANTS, latents=(16, 2)):
    """Every variant at each latent size, JMVAE-kl at latent 16 twice (two alphas, seeds)."""
    cfgs = []
    for latent in latents:
        for v in variants:
            runs = [(0.1, 1), (1.0, 2)] if v == "jmvae_kl" and latent != 2 else [(0.1, 1)]
            for alpha, seed in runs:
                cfgs.append(
                    make_config("smoke", variant=v, alpha=alpha, seed=seed, epochs=epochs,
                                hidden=64, latent_dim=latent, warmup_epochs=3, warmup_alpha=True)
                )  # fmt: skip
    return cfgs


def _groups_alone(cfgs, data, **kw):
    """Each architecture group trained by itself, results put back in `cfgs` order."""
    models, histories = [None] * len(cfgs), [None] * len(cfgs)
    for idx in split_groups(cfgs):
        ms, hs = fit_batched([cfgs[i] for i in idx], data, progress=False, draws="epoch", **kw)
        for i, m, h in zip(idx, ms, hs, strict=True):
            models[i], histories[i] = m, h
    return models, histories


@pytest.fixture(scope="module")
def alone(mnist_small):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module-scoped: made before the one_thread fixture applies
    try:
        return _groups_alone(_plan(), mnist_small)
    finally:
        torch.set_num_threads(threads)


def test_plan_groups_by_architecture_and_shares_one_schedule():
    cfgs = _plan(epochs=1)
    groups = split_groups(cfgs)
    assert len(groups) == 10 and sorted(i for g in groups for i in g) == list(range(11))
    assert [len(g) for g in groups].count(2) == 1  # the two JMVAE-kl runs at latent 16
    assert sorted(split_groups(cfgs, max_runs=1)) == [[i] for i in range(11)]  # cut in parts
    odd = make_config("smoke", variant="vae", epochs=2, hidden=64, latent_dim=16)
    with pytest.raises(ConfigError, match=r"train\.epochs differs"):
        split_groups([*cfgs, odd])


def test_whole_plan_step_equals_each_group_alone(mnist_small, alone):
    together = fit_batched(_plan(), mnist_small, progress=False, draws="epoch")
    assert differences(alone, together) == (0.0, 0.0)
    assert {row["batch_runs"] for h in together[1] for row in h} == {11}
    assert [len(h) for h in together[1]] == [EPOCHS] * 11
    parts = fit_batched(_plan(), mnist_small, progress=False, draws="epoch", max_group_runs=1)
    assert differences(alone, parts) == (0.0, 0.0)  # a group cut into parts: the same runs


def test_a_swapped_noise_fails_the_comparison(mnist_small, alone, monkeypatch):
    """The two JMVAE-kl runs of one group trade their noise in every epoch."""
    real = batched_step.EpochInputs.new_epoch

    def swapped(self, *args, **kwargs):
        real(self, *args, **kwargs)
        if self.eps.shape[0] == 2:
            self.eps[[0, 1]] = self.eps[[1, 0]].clone()

    monkeypatch.setattr(batched_step.EpochInputs, "new_epoch", swapped)
    together = fit_batched(_plan(), mnist_small, progress=False, draws="epoch")
    loss_rel, param_abs = differences(alone, together)
    assert loss_rel > 1e-3 and param_abs > 1e-3, (loss_rel, param_abs)


def test_one_groups_clipping_applied_to_another_fails_the_comparison(
    mnist_small, alone, monkeypatch
):
    """Group 0's step calls group 1's clipping: group 0's gradients go unclipped."""
    real = batched_step.make_step

    def crossed(mode, groups):
        groups[0].clip = groups[1].clip
        return real(mode, groups)

    monkeypatch.setattr(batched, "make_step", crossed)
    together = fit_batched(_plan(), mnist_small, progress=False, draws="epoch")
    loss_rel, param_abs = differences(alone, together)
    assert loss_rel > 1e-3 and param_abs > 1e-3, (loss_rel, param_abs)


def test_compiled_whole_plan_step_equals_each_group_alone(mnist_small):
    cfgs = _plan(variants=("vae", "jmvae_kl"), latents=(2,))  # 50 steps
    kw = {"step_mode": "compile"}
    together = fit_batched(cfgs, mnist_small, progress=False, draws="epoch", **kw)
    loss_rel, param_abs = differences(_groups_alone(cfgs, mnist_small, **kw), together)
    assert loss_rel <= COMPILED_RTOL and param_abs <= COMPILED_RTOL, (loss_rel, param_abs)
    assert {row["step_mode"] for h in together[1] for row in h} == {"compile"}
