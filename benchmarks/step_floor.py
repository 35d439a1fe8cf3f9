"""The floor of one training step at equal numbers: how much faster a step could be, at most,
without changing a single float operation of its matmuls or of Adam.

Usage: python benchmarks/step_floor.py [--threads 1,2] [--steps 200] [--reps 200]
           [--out benchmarks/results]

For JMVAE-kl (alpha = 0.1, the authors' architecture, batch 100, fp32, CPU), at each thread
count, in one process and back to back:
- the step: the reference step (benchmarks/reference_step.py) and `fit`'s step, each the mean
  of --steps steps from the same weights, and the time inside the matmuls of `fit`'s step (the
  profiler's self time, benchmarks/step_speed.py);
- the floor, three parts each timed alone in a loop of --reps calls, so that its operands stay
  as warm in the caches as they can be:
  * every matmul the step runs, with autograd's shapes and layouts (per linear layer: the
    forward addmm, the weight gradient x^T @ g, and the input gradient g @ W for every layer
    whose input is not the data), on the same MKL kernels;
  * Adam: the fused kernel `torch.optim.Adam(fused=True)` runs, over the model's 3.06 million
    weights with their gradients and moments, without the optimizer's Python around it;
  * the clipping's one unavoidable pass: the per-tensor norms of the gradients.
A step that computes the same numbers runs these matmuls and this Adam kernel and reads every
gradient once for its norm, so its time is at least the floor (on the same kernels: another
matmul or Adam kernel would change the order of float operations). The step's time over the
floor is the most any such rewrite could gain, even if the softplus terms, the likelihoods,
the ReLUs, the rescaling and autograd's bookkeeping took no time at all.
Writes <out>/<device-slug>-step-floor.json and prints a table.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import reference_step  # noqa: E402
from step_speed import DATA_LAYERS, _batch, _setup, machine_line, matmul_ms, report_head  # noqa: E402

from jmvae_core.config import make_config  # noqa: E402
from jmvae_core.data.mnist import load_mnist  # noqa: E402
from jmvae_core.store import write_benchmark  # noqa: E402
from jmvae_core.training import fit  # noqa: E402

BATCH = 100


def _per_call_ms(fn, reps: int) -> float:
    """ms per call of fn, the best of three loops of `reps` calls after a warm-up."""
    for _ in range(5):
        fn()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - start) / reps)
    return 1e3 * best


def matmul_floor_ms(model: nn.Module, reps: int) -> dict[str, float]:
    """ms of every matmul of one step, alone: forward, weight and input gradients by layer."""
    gen = torch.Generator().manual_seed(0)
    parts = {"forward": 0.0, "weight_grad": 0.0, "input_grad": 0.0}
    for name, layer in model.named_modules():
        if not isinstance(layer, nn.Linear):
            continue
        w, b = layer.weight.detach(), layer.bias.detach()
        x = torch.rand(BATCH, layer.in_features, generator=gen)
        g = torch.randn(BATCH, layer.out_features, generator=gen)
        parts["forward"] += _per_call_ms(partial(torch.addmm, b, x, w.t()), reps)
        parts["weight_grad"] += _per_call_ms(partial(torch.mm, x.t(), g), reps)
        if name not in DATA_LAYERS:
            parts["input_grad"] += _per_call_ms(partial(torch.mm, g, w), reps)
    return parts


def adam_and_norm_floor_ms(cfg, data, reps: int) -> dict[str, float]:
    """ms of the fused Adam kernel and of the gradients' norms, alone, on a trained-a-little
    model's real weights, gradients and moments."""
    model, opts = _setup(cfg)
    opt = opts["all"]
    params = opt.param_groups[0]["params"]
    gen = torch.Generator().manual_seed(1)
    for i in range(20):  # real moments and gradients
        fit._step(model, opts, *_batch(data, i, gen), gen, 1.0, 1.0, cfg.train)
    group, states = opt.param_groups[0], [opt.state[p] for p in params]
    grads = [p.grad for p in params]
    moments = [[s[key] for s in states] for key in ("exp_avg", "exp_avg_sq")]
    steps = [s["step"] for s in states]

    def adam():
        torch._fused_adam_(
            params, grads, *moments, [], steps, lr=group["lr"], beta1=group["betas"][0],
            beta2=group["betas"][1], weight_decay=0.0, eps=group["eps"], amsgrad=False,
            maximize=False,
        )  # fmt: skip

    return {
        "adam": _per_call_ms(adam, reps),
        "norms": _per_call_ms(lambda: torch._foreach_norm(grads), reps),
    }


def step_ms(cfg, data, steps: int) -> dict[str, float]:
    """ms per whole step of the reference step and of fit's, in alternating blocks."""
    kinds = {"reference": reference_step.step, "fit": fit._step}
    states = {kind: _setup(cfg) for kind in kinds}
    gen = torch.Generator().manual_seed(1)
    total = dict.fromkeys(kinds, 0.0)
    blocks = 3
    for block in range(blocks + 1):  # block 0 warms up
        for kind, step in kinds.items():
            model, opts = states[kind]
            start = time.perf_counter()
            for i in range(steps):
                x, w = _batch(data, block * steps + i, gen)
                step(model, opts, x, w, gen, 1.0, 1.0, cfg.train)
            if block:
                total[kind] += time.perf_counter() - start
    return {kind: 1e3 * t / (blocks * steps) for kind, t in total.items()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--n-train", type=int, default=20000)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    torch.set_flush_denormal(True)  # as fit sets it
    data = load_mnist(n_train=args.n_train)
    cfg = make_config("paper", variant="jmvae_kl", alpha=0.1)
    report = {**report_head("step_floor.py"), "by_threads": []}
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        print(f"{threads} thread(s): step, matmuls, Adam, norms", flush=True)
        step = step_ms(cfg, data, args.steps)
        matmuls = matmul_floor_ms(_setup(cfg)[0], args.reps)
        rest = adam_and_norm_floor_ms(cfg, data, args.reps)
        floor = sum(matmuls.values()) + sum(rest.values())
        report["by_threads"].append({
            "threads": threads,
            "step_ms": step,
            "matmul_in_step_ms": matmul_ms(cfg, data),
            "floor_ms": {**matmuls, **rest, "total": floor},
            "max_speedup": {kind: ms / floor for kind, ms in step.items()},
        })  # fmt: skip
    path = write_benchmark(report, args.out, "step-floor")
    print_table(report)
    print(f"wrote {path}")


def print_table(r: dict) -> None:
    print(machine_line(r))
    for row in r["by_threads"]:
        floor = row["floor_ms"]
        cells = ", ".join(f"{k} {v:.2f}" for k, v in floor.items() if k != "total")
        print(f"{row['threads']} thread(s): floor {floor['total']:.2f} ms ({cells})")
        print(f"  matmuls inside fit's step: {row['matmul_in_step_ms']:.2f} ms")
        for kind, ms in row["step_ms"].items():
            print(f"  {kind:9s} step {ms:.2f} ms: at most {row['max_speedup'][kind]:.2f}x faster")


if __name__ == "__main__":
    main()
