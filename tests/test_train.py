"""The trainer: learning, exact resume, divergence errors, warm-up, clipping, the run folder."""

import copy
import dataclasses
import importlib.util
from pathlib import Path

import pandas as pd
import pytest
import torch

from jmvae_core import store
from jmvae_core.config import VARIANTS, TrainConfig, make_config
from jmvae_core.data.mnist import MNIST
from jmvae_core.study import runs
from jmvae_core.training import fit as train_mod
from jmvae_core.training.fit import (
    TrainingDiverged,
    clip_gradients,
    fit,
    pick_device,
    warmup_scales,
)


def _reference_step():
    """benchmarks/reference_step.py: the step with torch's two clipping calls."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "reference_step.py"
    spec = importlib.util.spec_from_file_location("reference_step", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _subset(d: MNIST, n: int) -> MNIST:
    return MNIST(d.x_train[:n], d.w_train[:n], d.x_test, d.w_test, 0, d.test_hash)


@pytest.mark.parametrize("variant", VARIANTS)
def test_short_training_lowers_the_loss(variant, mnist_small):
    cfg = make_config("smoke", variant=variant, epochs=3, n_train=1000)
    _, history = fit(cfg, mnist_small, progress=False)
    assert history[-1]["loss"] < history[0]["loss"] - 5.0, [h["loss"] for h in history]


def test_bf16_training_learns_like_float32_and_really_runs_in_bf16(mnist_small):
    """TrainConfig.precision="bf16": the same losses to within bfloat16 rounding, not equal."""
    cfg = make_config("smoke", variant="jmvae_kl", epochs=2, n_train=1000)
    _, fp32 = fit(cfg, mnist_small, progress=False)
    model, bf16 = fit(make_config("smoke", variant="jmvae_kl", epochs=2, n_train=1000,
                                  precision="bf16"), mnist_small, progress=False)  # fmt: skip
    for a, b in zip(fp32, bf16, strict=True):
        assert a["loss"] != b["loss"]  # the autocast path ran
        assert abs(a["loss"] - b["loss"]) < 0.01 * abs(a["loss"]), (a["loss"], b["loss"])
    assert all(p.dtype == torch.float32 for p in model.parameters())  # float32 master weights


def test_resume_after_interrupt_equals_the_uninterrupted_run(mnist_small, tmp_path):
    data = _subset(mnist_small, 400)
    cfg = make_config("smoke", variant="jmvae_kl", epochs=3, n_train=400)
    straight, hist_a = fit(cfg, data, tmp_path / "a", progress=False)

    def interrupt(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(cfg, data, tmp_path / "b", progress=False, on_epoch_end=interrupt)
    assert len(store.load_torch(tmp_path / "b" / train_mod.CHECKPOINT)["history"]) == 2
    resumed, hist_b = fit(cfg, data, tmp_path / "b", progress=False)
    for (name, a), b in zip(
        straight.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name  # bitwise on the CPU
    drop = lambda rows: [{k: v for k, v in r.items() if k != "time_s"} for r in rows]  # noqa: E731
    assert drop(hist_a) == drop(hist_b)


def test_a_non_finite_loss_names_the_epoch_and_term(mnist_small, monkeypatch):
    build = train_mod.build_model

    def poisoned_model(cfg):
        model = build(cfg)
        real = model.spec.objective

        def poisoned(*args, **kwargs):
            terms = real(*args, **kwargs)
            terms["kl_prior"] = terms["kl_prior"] * float("nan")
            return terms

        model.spec = dataclasses.replace(model.spec, objective=poisoned)
        return model

    monkeypatch.setattr(train_mod, "build_model", poisoned_model)
    cfg = make_config("smoke", variant="vae", epochs=2, n_train=200)
    with pytest.raises(
        TrainingDiverged, match=r"epoch 1: non-finite loss term\(s\) \['kl_prior'\]"
    ):
        fit(cfg, _subset(mnist_small, 200), progress=False)


def test_warmup_is_linear_and_anneals_alpha_only_when_asked():
    tc = TrainConfig(warmup_epochs=4)
    assert [warmup_scales(tc, e) for e in range(5)] == [
        (0.25, 1.0),
        (0.5, 1.0),
        (0.75, 1.0),
        (1.0, 1.0),
        (1.0, 1.0),
    ]
    assert warmup_scales(TrainConfig(warmup_epochs=2, warmup_alpha=True), 0) == (0.5, 0.5)
    assert warmup_scales(TrainConfig(), 0) == (1.0, 1.0)


def test_clipping_bounds_the_global_norm_then_each_element():
    p = torch.zeros(100, requires_grad=True)
    p.grad = torch.cat([torch.full((1,), 50.0), torch.full((99,), 0.1)])
    clip_gradients([p], TrainConfig())
    assert float(p.grad.abs().max()) <= 1.0
    assert float(p.grad.norm()) <= 5.0 + 1e-5
    q = torch.zeros(3, requires_grad=True)
    q.grad = torch.tensor([3.0, -4.0, 0.5])
    clip_gradients([q], TrainConfig(clip_norm=None, clip_value=None))
    assert q.grad.tolist() == [3.0, -4.0, 0.5]


@pytest.mark.parametrize(("variant", "clip_value"), [("jmvae_kl", 1.0), ("jmvae_kl", 0.01),
                                                   ("cvae", 1.0)])  # fmt: skip
def test_the_step_equals_the_reference_step_bitwise_over_60_steps(variant, clip_value, mnist_small):
    """train._step against benchmarks/reference_step.step (torch's clip_grad_norm_ and
    clip_grad_value_) from the same weights and draws, at the paper's architecture: every
    loss term of every step and every weight after 60 steps are equal, not merely close.
    At the paper's bound of 1 no element reaches it in these steps; a bound of 0.01 clamps."""
    reference = _reference_step()
    cfg = make_config("paper", variant=variant, alpha=0.1, clip_value=clip_value)
    torch.manual_seed(0)
    model = train_mod.build_model(cfg.model)
    twin = copy.deepcopy(model)
    device = torch.device("cpu")
    opt, opt_twin = (train_mod.make_optimizers(m, cfg.train, device) for m in (model, twin))
    gen, gen_twin = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    clamped = 0
    for i in range(60):
        idx = slice(100 * (i % 10), 100 * (i % 10 + 1))
        x, w = torch.bernoulli(mnist_small.x_train[idx], generator=gen), mnist_small.w_train[idx]
        x_twin = torch.bernoulli(mnist_small.x_train[idx], generator=gen_twin)
        beta = min(1.0, (i + 1) / 20)  # a warm-up, so that the gradients' scale changes
        ours = train_mod._step(model, opt, x, w, gen, beta, beta, cfg.train)
        theirs = reference.step(twin, opt_twin, x_twin, w, gen_twin, beta, beta, cfg.train)
        assert {k: v.item() for k, v in ours.items()} == {k: v.item() for k, v in theirs.items()}
        grads = [p.grad for p in model.parameters()]
        clamped += sum(int((g.abs() == clip_value).sum()) for g in grads)
    for (name, a), b in zip(model.state_dict().items(), twin.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert (clamped > 0) == (clip_value < 1.0)  # the clamp changed values where it could


def test_clipping_skips_only_what_cannot_change_a_value():
    """Against torch's two calls on crafted gradients: a factor of exactly 1 (no rescaling),
    a tensor with an element above the bound after rescaling, a tensor whose norm is just
    below the bound, NaN and inf; each equal to torch's result, NaN for NaN."""
    reference = _reference_step()
    cases = [
        [torch.tensor([0.3, -0.2]), torch.tensor([0.1])],  # norm < 5: factor 1, nothing clamped
        [torch.tensor([4.0, 0.0]), torch.tensor([0.5, 0.5, 0.5])],  # factor 1, one clamp
        [torch.full((10,), 0.3), torch.tensor([60.0, 1.0, -80.0])],  # rescaled, clamped
        [torch.tensor([0.985, 0.0])],  # norm just below 0.99 * bound: no clamp can change it
        [torch.tensor([1.5])],  # one element above the bound, norm = the element
        [torch.tensor([float("nan"), 1.0]), torch.tensor([2.0])],
        [torch.tensor([float("inf"), 1.0]), torch.tensor([2.0])],
    ]
    for config in (TrainConfig(), TrainConfig(clip_norm=None), TrainConfig(clip_value=None)):
        for grads in cases:
            ours = [torch.zeros_like(g, requires_grad=True) for g in grads]
            theirs = [torch.zeros_like(g, requires_grad=True) for g in grads]
            for p, q, g in zip(ours, theirs, grads, strict=True):
                p.grad, q.grad = g.clone(), g.clone()
            clip_gradients(ours, config)
            reference.clip_gradients(theirs, config)
            for p, q in zip(ours, theirs, strict=True):
                assert torch.equal(p.grad, q.grad) or (
                    torch.isnan(p.grad).equal(torch.isnan(q.grad))
                    and torch.equal(p.grad.nan_to_num(), q.grad.nan_to_num())
                ), (config, grads, p.grad, q.grad)


def test_device_is_chosen_or_taken_as_given(monkeypatch):
    """Given: taken as it is. Not given: cuda if available, else mps, else cpu."""
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("cuda:1") == torch.device("cuda", 1)  # no check: the caller asked
    mps = torch.backends.mps
    for cuda, apple, expected in [
        (True, True, "cuda"),
        (False, True, "mps"),
        (False, False, "cpu"),
    ]:
        monkeypatch.setattr(torch.cuda, "is_available", lambda cuda=cuda: cuda)
        monkeypatch.setattr(mps, "is_available", lambda apple=apple: apple)
        assert pick_device() == torch.device(expected), (cuda, apple)


def test_run_one_writes_the_results_contract_and_caches(tmp_path, monkeypatch):
    cfg = make_config(
        "smoke", variant="jmvae_kl", epochs=1, n_train=200, n_test=50, k=5, n_prior=20
    )
    metrics = runs.run_one(runs.Run(cfg, "smoke", tmp_path), device="cpu", progress=False)
    folder = store.run_dir("smoke", cfg.run_id, tmp_path)
    names = {"config.json", "history.csv", "metrics.json", "arrays.npz", "DONE"}
    assert names <= {p.name for p in folder.iterdir()}
    assert set(metrics["estimators"]) == {
        "joint",
        "marginal",
        "conditional",
        "pseudo_marginal",
        "pseudo_conditional",
    }
    for key in (
        "variant",
        "alpha",
        "latent_dim",
        "seed",
        "profile",
        "epochs",
        "wall_time_s",
        "device",
        "torch",
        "git_commit",
        "test_hash",
    ):
        assert key in metrics, key
    assert metrics["estimators"]["marginal"]["n_test"] == 50
    assert len(pd.read_csv(folder / "history.csv")) == 1
    monkeypatch.setattr(runs, "fit", lambda *a, **k: pytest.fail("trained again"))
    assert runs.run_one(runs.Run(cfg, "smoke", tmp_path), device="cpu") == metrics


def test_a_folder_without_done_is_not_a_result(tmp_path, monkeypatch):
    cfg = make_config("smoke", variant="vae", epochs=1, n_train=200, n_test=20, k=3)
    folder = store.run_dir("smoke", cfg.run_id, tmp_path)
    store.write_json(folder / "metrics.json", {"stale": True})  # a crashed run's leftovers
    metrics = runs.run_one(runs.Run(cfg, "smoke", tmp_path), device="cpu", progress=False)
    assert "stale" not in metrics and store.is_done(folder)


@pytest.mark.parametrize(
    ("entry", "settings", "message"),
    [
        ("run_one", {"n_train": None, "batch_size": 70000}, "batch_size=70000 is larger"),
        ("train_run", {"n_train": 70000}, "n_train=70000 exceeds the 60,000"),
        ("evaluate_run", {"n_test": 20000}, "n_test=20000 exceeds the 10,000"),
    ],
)
def test_the_library_entry_points_check_a_config_as_the_cli_does(
    entry, settings, message, tmp_path
):
    from jmvae_core.config import ConfigError
    from jmvae_core.study import runs

    cfg = make_config("smoke", variant="vae", **settings)
    with pytest.raises(ConfigError, match=message):
        getattr(runs, entry)(runs.Run(cfg, "smoke", tmp_path), device="cpu", progress=False)
    assert not any(tmp_path.iterdir())  # stopped before any file


def test_fit_and_fit_batched_check_the_batch_against_the_data_given(mnist_small):
    from jmvae_core.config import ConfigError
    from jmvae_core.training.batched import fit_batched

    data = _subset(mnist_small, 200)
    cfg = make_config("smoke", variant="vae", batch_size=500, n_train=None)  # all it is given
    for train in (lambda: fit(cfg, data, progress=False), lambda: fit_batched([cfg], data)):
        with pytest.raises(ConfigError, match="batch_size=500 is larger than the 200 training"):
            train()
