"""fit_batched reproduces training.fit run by run: losses, weights, configs.

What is compared: every loss term of every run's per-epoch history, and every final weight.
On one CPU thread the batched arithmetic is bitwise that of fit(): each batched matmul is, run
by run, the matmul nn.Linear runs, Adam steps per-run views, the loss terms are built in the
objectives' order. Measured maximum differences (2-core CPU, torch 2.14, 1 thread): exactly 0
for losses and weights in every test below except the stacked-Adam one (weights 4.7e-10).
With 2 threads, one narrow weight gradient (p(w|z)'s 10-unit output layer) is split
differently by the BLAS for R > 1 and differs in the last bit: then the 20- and 30-step tests
still pass (measured 1.6e-7 relative on losses, 6e-8 on weights), the 200-step JMVAE-kl one
does not (1.8e-5, 9.5e-4), hence the one-thread fixture.

Why 200 steps demand (near) bitwise agreement: training amplifies last-bit differences
chaotically. Moving one weight of a single fit() by one ulp, or stepping Adam over the stacked
tensors (whose vector tail rounds differently), changes losses by ~2e-3 and weights by ~1e-2
within 200 steps (measured). The tolerances below are float32 noise of one step (LOSS_RTOL
relative, PARAM_ATOL about one ulp of the largest weights); the long tests use a reduced width
(hidden 64, latent 16) to stay fast, the paper width (hidden 512, latent 64) is run 20 steps.
"""

import pytest
import torch

from jmvae_core.config import VARIANTS, ModelConfig, make_config
from jmvae_core.models import build_model, paper
from jmvae_core.training.batched import fit_batched
from jmvae_core.training.fit import fit
from jmvae_core.training.stacked import BatchedModel, stack_models, unstack

LOSS_RTOL = 1e-6  # relative, per run, epoch and loss term (measured: 0)
PARAM_ATOL = 1e-7  # absolute, final weights, |w| < 1 (measured: 0; 4.7e-10 with stacked Adam)
SMALL = {"hidden": 64, "latent_dim": 16}
NOT_TERMS = {"epoch", "beta", "alpha_scale", "time_s", "batch_runs"}
KL_RUNS = [(0.01, 1), (0.1, 2), (1.0, 3)]  # (alpha, seed)


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


def _cfgs(variant, runs, epochs, **overrides):
    return [
        make_config("smoke", variant=variant, alpha=a, seed=s, epochs=epochs, **overrides)
        for a, s in runs
    ]


def _diffs(alone, together):
    """(max relative loss-term difference, max absolute weight difference) over all runs."""
    loss_rel, param_abs = 0.0, 0.0
    for (model_a, hist_a), model_b, hist_b in zip(alone, *together, strict=True):
        assert len(hist_a) == len(hist_b)
        for row_a, row_b in zip(hist_a, hist_b, strict=True):
            assert row_a.keys() - {"time_s"} == row_b.keys() - {"time_s", "batch_runs"}
            assert (row_a["beta"], row_a["alpha_scale"]) == (row_b["beta"], row_b["alpha_scale"])
            for k in row_a.keys() - NOT_TERMS:
                rel = abs(row_a[k] - row_b[k]) / max(abs(row_a[k]), 1e-3)
                loss_rel = max(loss_rel, rel)
        params_b = dict(model_b.named_parameters())
        for name, p in model_a.named_parameters():
            param_abs = max(param_abs, (p - params_b[name]).abs().max().item())
    return loss_rel, param_abs


def _alone(cfgs, data):
    return [fit(cfg, data, progress=False) for cfg in cfgs]


def _check(cfgs, data, **kwargs):
    loss_rel, param_abs = _diffs(_alone(cfgs, data), fit_batched(cfgs, data, None, False, **kwargs))
    assert loss_rel <= LOSS_RTOL and param_abs <= PARAM_ATOL, (loss_rel, param_abs)


def test_jmvae_kl_three_alphas_match_fit(mnist_small):
    """R = 3 (alpha 0.01, 0.1, 1; seeds 1-3), 1000 images x 20 epochs = 200 steps per run,
    with a 5-epoch warm-up that also anneals alpha."""
    _check(_cfgs("jmvae_kl", KL_RUNS, 20, warmup_epochs=5, warmup_alpha=True, **SMALL), mnist_small)


def test_vae_matches_fit_and_a_wrong_seed_does_not(mnist_small):
    """R = 2 VAE runs (seeds 1, 2), 200 steps each; run 2 compared with seed 1 must fail."""
    cfgs = _cfgs("vae", [(0.0, 1), (0.0, 2)], 20, **SMALL)
    alone = _alone(cfgs, mnist_small)
    together = fit_batched(cfgs, mnist_small, progress=False)
    loss_rel, param_abs = _diffs(alone, together)
    assert loss_rel <= LOSS_RTOL and param_abs <= PARAM_ATOL, (loss_rel, param_abs)
    wrong = _diffs(alone[:1], ([together[0][1]], [together[1][1]]))
    assert wrong[0] > 1000 * LOSS_RTOL and wrong[1] > 1000 * PARAM_ATOL, wrong


def test_paper_width_matches_fit(mnist_small):
    """The MNIST architecture of book/model.md (hidden 512, latent 64), R = 3 JMVAE-kl,
    2 epochs = 20 steps."""
    _check(_cfgs("jmvae_kl", KL_RUNS, 2), mnist_small)


@pytest.mark.parametrize("variant", ["jmvae_zero", "cvae", "cmma"])
def test_other_variants_match_fit(mnist_small, variant):
    """R = 2 (seeds 1, 2), 3 epochs = 30 steps per run at the reduced width."""
    _check(_cfgs(variant, [(0.0, 1), (0.0, 2)], 3, **SMALL), mnist_small)


def test_stacked_adam_matches_fit_to_float_noise(mnist_small):
    """Adam over the stacked tensors (the default off the CPU), R = 3, 30 steps."""
    _check(_cfgs("jmvae_kl", KL_RUNS, 3, **SMALL), mnist_small, per_run_adam=False)


def _bitwise_equal(first, second) -> bool:
    """Two fit_batched results: equal history rows (but wall times) and equal weights."""
    for model_a, hist_a, model_b, hist_b in zip(*first, *second, strict=True):
        strip = lambda rows: [{k: v for k, v in r.items() if k != "time_s"} for r in rows]  # noqa: E731
        if strip(hist_a) != strip(hist_b):
            return False
        params_b = dict(model_b.named_parameters())
        if not all(torch.equal(p, params_b[n]) for n, p in model_a.named_parameters()):
            return False
    return True


@pytest.mark.parametrize(("draws", "pause"), [("step", "epochs"), ("epoch", "on_epoch_end")])
def test_checkpoint_resume_equals_uninterrupted(mnist_small, tmp_path, draws, pause):
    """R = 2 JMVAE-kl, 3 epochs with a warm-up: straight, or paused after epoch 2 (by `epochs`
    or by on_epoch_end) and resumed from the checkpoint for epoch 3: bitwise equal."""
    cfgs = _cfgs("jmvae_kl", KL_RUNS[:2], 3, warmup_epochs=3, warmup_alpha=True, **SMALL)
    kw = {"progress": False, "draws": draws}
    straight = fit_batched(cfgs, mnist_small, **kw)
    ckpt = tmp_path / "group.pt"
    if pause == "epochs":
        first = fit_batched(cfgs, mnist_small, **kw, checkpoint=ckpt, epochs=2)
    else:  # no periodic checkpoint: stopping writes one
        stop = lambda rows: rows[0]["epoch"] == 2  # noqa: E731
        first = fit_batched(
            cfgs, mnist_small, **kw, checkpoint=ckpt, checkpoint_every=10, on_epoch_end=stop
        )
    assert [len(h) for h in first[1]] == [2, 2] and ckpt.exists()
    assert not _bitwise_equal(straight, first)  # weights after 2 epochs are not those after 3
    resumed = fit_batched(cfgs, mnist_small, **kw, checkpoint=ckpt)
    assert _bitwise_equal(straight, resumed)
    again = fit_batched(cfgs, mnist_small, **kw, checkpoint=ckpt)  # finished: nothing to train
    assert _bitwise_equal(straight, again)


def test_checkpoint_of_other_runs_or_draws_is_refused(mnist_small, tmp_path):
    cfgs = _cfgs("jmvae_kl", KL_RUNS[:2], 1, **SMALL)
    ckpt = tmp_path / "group.pt"
    fit_batched(cfgs, mnist_small, progress=False, checkpoint=ckpt)
    with pytest.raises(ValueError, match="draws='step', not 'epoch'"):
        fit_batched(cfgs, mnist_small, progress=False, checkpoint=ckpt, draws="epoch")
    with pytest.raises(ValueError, match="run_ids="):
        fit_batched(cfgs[:1], mnist_small, progress=False, checkpoint=ckpt)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("batch_size", 50),
        ("lr", 3e-4),
        ("warmup_epochs", 3),
    ],
)
def test_mismatched_configs_raise_naming_the_field(mnist_small, field, value):
    cfgs = _cfgs("jmvae_kl", KL_RUNS[:2], 1)
    odd = make_config("smoke", **{"variant": "jmvae_kl", "seed": 3, "epochs": 1, field: value})
    with pytest.raises(ValueError, match=rf"\.{field} differs"):
        fit_batched([*cfgs, odd], mnist_small, progress=False)


@pytest.mark.parametrize(("variant", "prior_kl"), [(v, True) for v in VARIANTS] + [("cmma", False)])
def test_stack_unstack_round_trip_and_batched_objective(variant, prior_kl):
    """unstack(stack(models)) is bit-identical; the objective gives stacked runs the terms it
    gives each run alone."""
    cfgs = [ModelConfig(variant=variant, alpha=a, cmma_prior_kl=prior_kl) for a in (0.1, 1.0)]
    models = []
    for seed, cfg in enumerate(cfgs):
        torch.manual_seed(seed)
        models.append(build_model(cfg))
    rng = torch.get_rng_state()
    batched = stack_models(models)
    assert isinstance(batched, BatchedModel)
    for r, model in enumerate(models):
        back = unstack(batched, r)
        assert back.cfg == cfgs[r] and type(back) is type(model)
        original, restored = model.state_dict(), back.state_dict()
        assert list(original) == list(restored)
        for name, p in original.items():
            assert torch.equal(p, restored[name]), name
    assert torch.equal(rng, torch.get_rng_state())  # stacking draws no random numbers
    x = torch.bernoulli(torch.full((2, 30, 784), 0.3))
    w = torch.nn.functional.one_hot(torch.randint(0, 10, (2, 30)), 10).float()
    eps = torch.randn(2, 30, 64)
    objective = paper.OBJECTIVES[variant]  # the one function both paths call
    terms = objective(batched, x, w, eps, beta=0.5, alpha=batched.alpha)
    for r, model in enumerate(models):
        single = objective(model, x[r], w[r], eps[r], beta=0.5)
        assert single.keys() == terms.keys()
        for k, v in single.items():
            assert torch.equal(terms[k][r], v), k  # bitwise on one thread
        for infer, data in (("infer_from_x", x), ("infer_from_w", w)):
            if hasattr(model, infer):  # single-input inference, as the estimators use it
                together, alone = getattr(batched, infer)(data), getattr(model, infer)(data[r])
                assert all(torch.equal(a[r], b) for a, b in zip(together, alone, strict=True))


def test_batched_training_refuses_a_precision_it_does_not_apply(mnist_small):
    from jmvae_core.config import ConfigError

    cfgs = _cfgs("vae", [(0.0, 1)], 1, precision="bf16")
    with pytest.raises(ConfigError, match="batched training runs in fp32 only"):
        fit_batched(cfgs, mnist_small, progress=False)
