"""Epoch draws and the pure-tensor step of fit_batched (jmvae_core.training.batched_step).

What is compared, and the measured differences (2-core CPU, torch 2.14.1, one thread):
- draws="epoch", R runs together vs each run alone (R = 1) in the same mode, 200 steps:
  losses and final weights bitwise equal (measured 0; tolerances as test_batched's).
- compiled vs eager step on one trajectory, 100 steps in lockstep: every loss term within
  2.7e-7 relative, every clipped gradient within 9.2e-7 of its tensor's largest for that run
  (measured); eager against itself gives 0, and a loss fed other noise differs by far more.
  End to end over 10 steps: losses 1.8e-7 relative, weights 3e-8. Over 100 free-running steps
  the two diverge chaotically from these last-bit differences (measured 8.6e-4 on losses,
  8e-3 on weights), as any two float orders do (test_batched's docstring), so the long
  comparison is made in lockstep. inductor's first compilation of the JMVAE-kl loss takes
  about 32 s on one thread with a cold cache, about 5 s with a warm one (measured).
- the CUDA-graph mode cannot run here: asked on a CPU it raises; its fallback path (capture
  fails -> eager, with a warning) is driven through fake CUDA calls and equals eager exactly;
  and what a replayed graph relies on is checked: every tensor the step touches keeps its
  address across steps and epochs (a buffer re-assigned instead of refilled fails it).
"""

import contextlib
import time

import pytest
import torch

import jmvae_core.training.batched as batched
import jmvae_core.training.batched_step as batched_step
import jmvae_core.training.stacked as stacked
from jmvae_core.config import make_config
from jmvae_core.models.paper import OBJECTIVES
from jmvae_core.training.batched import _adam, clip_gradients_per_run, fit_batched
from jmvae_core.training.batched_step import EpochInputs, compiled, train_step
from jmvae_core.training.batched_step import differences as _diffs

SMALL = {"hidden": 64, "latent_dim": 16}
KL_RUNS = [(0.01, 1), (0.1, 2), (1.0, 3)]  # (alpha, seed)
LOSS_RTOL = 1e-6  # bitwise expected (measured 0)
PARAM_ATOL = 1e-7
LOSS = OBJECTIVES["jmvae_kl"]  # every test here trains JMVAE-kl
COMPILED_RTOL = 1e-5  # compiled vs eager, per step or over 10 steps (measured <= 9.2e-7)


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.one_thread


def _cfgs(runs, epochs, variant="jmvae_kl", **overrides):
    return [
        make_config("smoke", variant=variant, alpha=a, seed=s, epochs=epochs, **SMALL, **overrides)
        for a, s in runs
    ]


def _alone(cfgs, data, **kwargs):
    """Each run trained by itself (R = 1), gathered as one (models, histories) pair."""
    singles = [fit_batched([cfg], data, progress=False, **kwargs) for cfg in cfgs]
    return [m for (m,), _ in singles], [h for _, (h,) in singles]


def test_epoch_draws_together_equal_alone_and_a_wrong_seed_does_not(mnist_small):
    """R = 3 JMVAE-kl (alpha 0.01, 0.1, 1), 20 epochs x 10 steps with a 5-epoch warm-up of
    beta and alpha; then run 2's result compared with run 1's must fail."""
    cfgs = _cfgs(KL_RUNS, 20, warmup_epochs=5, warmup_alpha=True)
    together = fit_batched(cfgs, mnist_small, progress=False, draws="epoch")
    alone = _alone(cfgs, mnist_small, draws="epoch")
    loss_rel, param_abs = _diffs(alone, together)
    assert loss_rel <= LOSS_RTOL and param_abs <= PARAM_ATOL, (loss_rel, param_abs)
    wrong = _diffs(([alone[0][0]], [alone[1][0]]), ([together[0][1]], [together[1][1]]))
    assert wrong[0] > 1000 * LOSS_RTOL and wrong[1] > 1000 * PARAM_ATOL, wrong
    rows = together[1][0]
    assert {(r["draws"], r["step_mode"]) for r in rows} == {("epoch", "eager")}
    # same distribution as fit's per-step draws, other numbers: close, not equal, losses
    step = fit_batched(cfgs, mnist_small, progress=False)
    for hist_epoch, hist_step in zip(together[1], step[1], strict=True):
        a, b = hist_epoch[-1]["loss"], hist_step[-1]["loss"]
        assert a != b and abs(a - b) / b < 0.02, (a, b)  # measured <= 0.45%
        assert "draws" not in hist_step[-1]  # rows without "draws" follow fit's stream


def test_epoch_draws_follow_the_documented_order(mnist_small):
    """Per run: randperm, then uniforms (n_batches, B, X) with x = U < grey, then eps."""
    data, n_batches = mnist_small, 10
    inputs = EpochInputs(data, runs=2, batch_size=100, latent=16)
    gens = [torch.Generator().manual_seed(seed) for seed in (7, 8)]
    inputs.new_epoch(data, gens, beta=0.5, alpha=torch.tensor([0.1, 1.0]))
    for r, seed in enumerate((7, 8)):
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(1000, generator=g)
        grey = data.x_train[order].view(n_batches, 100, 784)
        x = torch.rand(grey.shape, generator=g) < grey
        eps = torch.randn(n_batches, 100, 16, generator=g)
        assert torch.equal(inputs.x[r], x) and torch.equal(inputs.eps[r], eps)
        assert torch.equal(inputs.w[r], data.w_train[order].view(n_batches, 100, 10))
    inputs.step.fill_(3)
    x, w, eps = inputs.batch()
    assert x.dtype == torch.float32 and x.shape == (2, 100, 784)
    assert torch.equal(x, inputs.x[:, 3].float()) and torch.equal(eps, inputs.eps[:, 3])
    assert inputs.beta.item() == 0.5 and inputs.alpha.tolist() == pytest.approx([0.1, 1.0])


def test_compiled_step_matches_eager(mnist_small):
    """torch.compile of the loss: 10 steps end to end, then 100 steps in lockstep (module
    docstring): at every step the compiled terms and clipped gradients equal eager's to
    COMPILED_RTOL while the eager update drives both."""
    cfgs = _cfgs(KL_RUNS, 1)
    start = time.perf_counter()
    eager = fit_batched(cfgs, mnist_small, progress=False, draws="epoch")
    fast = fit_batched(cfgs, mnist_small, progress=False, draws="epoch", step_mode="compile")
    seconds = time.perf_counter() - start
    assert {r["step_mode"] for h in fast[1] for r in h} == {"compile"}
    loss_rel, param_abs = _diffs(eager, fast)
    assert loss_rel <= COMPILED_RTOL and param_abs <= COMPILED_RTOL, (loss_rel, param_abs)
    assert seconds < 120, f"compilation took {seconds:.0f} s"
    worst = _lockstep(cfgs, mnist_small, compiled(LOSS), epochs=10)
    assert max(worst) <= COMPILED_RTOL, worst
    # the comparison can fail: the same loss fed the batch's noise in another order
    other_noise = lambda m, x, w, eps, b, a: LOSS(m, x, w, eps.flip(1), b, a)  # noqa: E731
    wrong = _lockstep(cfgs, mnist_small, other_noise, epochs=1)
    assert min(wrong) > 1000 * COMPILED_RTOL, wrong


def _lockstep(cfgs, data, other_loss, epochs):
    """Max relative difference (loss terms, gradients) of `other_loss` vs LOSS, both
    evaluated at every state of one eager trajectory of `epochs` epochs."""
    model = stacked.stack_models([_seeded_model(cfg) for cfg in cfgs])
    tc = cfgs[0].train
    optimizer, attach = _adam(list(model.parameters()), tc, torch.device("cpu"), per_run=True)
    params = list(model.parameters())
    clip = lambda: clip_gradients_per_run(params, tc.clip_norm, tc.clip_value)  # noqa: E731
    inputs = EpochInputs(data, len(cfgs), tc.batch_size, cfgs[0].model.latent_dim)
    gens = [torch.Generator().manual_seed(c.train.seed) for c in cfgs]
    worst_terms, worst_grads = 0.0, 0.0
    for _ in range(epochs):
        inputs.new_epoch(data, gens, 1.0, torch.tensor([c.model.alpha for c in cfgs]))
        for _ in range(inputs.n_batches):
            terms_a, grads_a = _terms_and_grads(model, inputs, LOSS, clip)
            terms_b, grads_b = _terms_and_grads(model, inputs, other_loss, clip)
            for k, v in terms_a.items():
                rel = ((v - terms_b[k]).abs() / v.abs().clamp(min=1e-3)).max().item()
                worst_terms = max(worst_terms, rel)
            for ga, gb in zip(grads_a, grads_b, strict=True):
                scale = ga.flatten(1).abs().amax(1).clamp(min=1e-12)  # per run
                rel = ((ga - gb).flatten(1).abs().amax(1) / scale).max().item()
                worst_grads = max(worst_grads, rel)
            train_step(model, optimizer, attach, inputs, LOSS, clip)
    return worst_terms, worst_grads


def _terms_and_grads(model, inputs, loss_fn, clip):
    """Loss terms and clipped gradients of the current batch, leaving the weights as they are."""
    terms = loss_fn(model, *inputs.batch(), inputs.beta, inputs.alpha)
    model.zero_grad(set_to_none=True)
    terms["loss"].sum().backward()
    clip()
    return {k: v.detach() for k, v in terms.items()}, [p.grad for p in model.parameters()]


def _seeded_model(cfg):
    torch.manual_seed(cfg.train.seed)
    return batched.build_model(cfg.model)


def test_step_tensors_keep_their_addresses(mnist_small):
    """What a CUDA graph relies on, checked on the CPU: across steps and epochs every tensor
    the step reads or writes (draws, scalars, sums, weights, Adam state) stays where it was,
    so that a replayed graph sees the refilled draws and the updated weights."""
    cfgs = _cfgs(KL_RUNS[:2], 1)
    tc = cfgs[0].train
    model = stacked.stack_models([_seeded_model(cfg) for cfg in cfgs])
    optimizer, attach = _adam(list(model.parameters()), tc, torch.device("cpu"), per_run=False)
    params = list(model.parameters())
    clip = lambda: clip_gradients_per_run(params, tc.clip_norm, tc.clip_value)  # noqa: E731
    inputs = EpochInputs(mnist_small, len(cfgs), tc.batch_size, cfgs[0].model.latent_dim)
    gens = [torch.Generator().manual_seed(c.train.seed) for c in cfgs]

    def addresses():
        tensors = [inputs.x, inputs.w, inputs.eps, inputs.step, inputs.beta, inputs.alpha]
        tensors += [inputs.sums, *model.parameters()]
        tensors += [t for state in optimizer.state.values() for t in state.values()]
        return [t.data_ptr() for t in tensors]

    seen = []
    for epoch in range(3):
        inputs.new_epoch(mnist_small, gens, 0.5 * (epoch + 1), torch.tensor([0.1, 1.0]))
        for _ in range(inputs.n_batches):
            train_step(model, optimizer, attach, inputs, LOSS, clip)
            seen.append(addresses())
    assert inputs.step.item() == inputs.n_batches and inputs.beta.item() == 1.5
    assert all(a == seen[0] for a in seen) and len(seen[0]) > 10


def test_graph_mode_needs_cuda_and_epoch_draws(mnist_small):
    cfgs = _cfgs(KL_RUNS[:1], 1)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        fit_batched(cfgs, mnist_small, "cpu", False, draws="epoch", step_mode="graph")
    with pytest.raises(ValueError, match="needs draws='epoch'"):
        fit_batched(cfgs, mnist_small, "cpu", False, step_mode="compile")
    with pytest.raises(ValueError, match="draws='every' is unknown"):
        fit_batched(cfgs, mnist_small, "cpu", False, draws="every")
    with pytest.raises(ValueError, match="step_mode='jit' is unknown"):
        fit_batched(cfgs, mnist_small, "cpu", False, draws="epoch", step_mode="jit")


class _FakeStream:
    def wait_stream(self, other):
        pass


def test_failed_graph_capture_falls_back_to_eager(mnist_small, monkeypatch):
    """The CUDA calls of GraphStep are faked and the capture made to fail: after warm-up
    steps on the (fake) side stream, training goes on eagerly, warns, says so in the rows,
    and gives exactly eager's result (stacked Adam in both, as graph mode uses)."""
    cfgs = _cfgs(KL_RUNS[:2], 2)
    eager = fit_batched(cfgs, mnist_small, progress=False, draws="epoch", per_run_adam=False)

    @contextlib.contextmanager
    def failing_capture(graph):
        raise RuntimeError("capture refused (fake)")
        yield  # pragma: no cover

    monkeypatch.setattr(batched_step, "check_graph_device", lambda device, mode: None)
    fakes = {
        "Stream": _FakeStream,
        "current_stream": _FakeStream,
        "stream": lambda s: contextlib.nullcontext(),
        "CUDAGraph": object,
        "graph": failing_capture,
        "synchronize": lambda: None,
    }
    for name, fake in fakes.items():
        monkeypatch.setattr(torch.cuda, name, fake)
    with pytest.warns(RuntimeWarning, match="capture of the training step failed"):
        graph = fit_batched(
            cfgs, mnist_small, progress=False, draws="epoch", step_mode="graph", per_run_adam=False
        )
    assert [r["step_mode"] for r in graph[1][0]] == ["eager", "eager"]
    assert _diffs(eager, graph) == (0.0, 0.0)
