"""Where a training step's time goes: the whole plan in one step against each group alone.

Usage (torch and numpy only; the GPU study script calls `profile` too):
    python benchmarks/plan_step.py [--device cpu|cuda] [--mode eager|graph|compile-graph]
        [--matmul fp32|tf32] [--steps 50] [--n-train 1000] [--out benchmarks/results]

For config.plan("paper") (39 runs in 9 architecture groups) and, separately, for every group
alone (the per-group baseline; "jmvae_kl-z64" also as its first 5 runs, the group the
earlier per-group GPU measurement used), one training step of fit_batched's epoch-draws path:
- ops: operations dispatched per step (views excluded), counted on any device: on CUDA
  about one kernel each (a foreach or fused-Adam operation: one to a few);
- kernels (CUDA only): kernels the profiler saw in one eager step, their summed time and the
  part spent in matmul kernels;
- ms: wall milliseconds per step, mean over --steps steps after warm-up (graph: replays);
- matmul FLOPs per step counted from the layer shapes (forward, weight gradients, input
  gradients of all but the data layers), and the rate it implies against the measured
  matmul peak of speed.py (float32, and TF32 with --matmul tf32).
Writes <out>/<device-slug>-plan-step.json and prints a table.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import time
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from speed import matmul_peak  # noqa: E402

from jmvae_core.config import plan  # noqa: E402
from jmvae_core.data.mnist import load_mnist  # noqa: E402
from jmvae_core.store import device_name, write_benchmark  # noqa: E402
from jmvae_core.training.batched import Group, split_groups  # noqa: E402
from jmvae_core.training.batched_step import EpochInputs, make_step, matmul_precision  # noqa: E402

# dispatched operations that launch no kernel: views, metadata, allocation
NO_KERNEL = {"detach", "empty", "empty_like", "empty_strided", "lift_fresh", "alias",
             "_unsafe_view", "t", "transpose", "expand", "resolve_conj", "resolve_neg",
             "_record_function_enter_new", "_record_function_exit", "is_nonzero",
             "_local_scalar_dense"}  # fmt: skip
MATMUL_KERNEL = re.compile(r"gemm|cutlass|xmma|sm\d+_|ampere|hopper|matmul|bmm", re.I)


def group_name(cfg) -> str:
    return f"{cfg.model.variant}-z{cfg.model.latent_dim}"


def step_flops(cfgs) -> float:
    """Matmul FLOPs of one step of these runs (batch B): forward, weight gradients, and input
    gradients of every layer but those reading the data (in_features = x_dim or w_dim)."""
    from jmvae_core.models import build_model

    total = 0
    for cfg in cfgs:
        with torch.device("meta"):
            model = build_model(cfg.model)
        for m in model.modules():
            if isinstance(m, torch.nn.Linear):
                macs = m.in_features * m.out_features
                data_layer = m.in_features in (cfg.model.x_dim, cfg.model.w_dim)
                total += (2 if data_layer else 3) * macs * cfg.train.batch_size
    return 2.0 * total


class _Count(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if not func.is_view and name not in NO_KERNEL:
            self.ops[name] += 1
        return func(*args, **(kwargs or {}))


def build_step(cfgs, data, device, mode: str, max_runs: int | None = None):
    """fit_batched's epoch-draws step of `cfgs` (all groups together), ready to call."""
    groups = []
    for idx in split_groups(cfgs, max_runs):
        g = Group([cfgs[i] for i in idx], device, per_run=device.type == "cpu")
        tc = g.cfgs[0].train
        g.inputs = EpochInputs(data, len(g.cfgs), tc.batch_size, g.model.cfg.latent_dim)
        alphas = torch.tensor([c.model.alpha for c in g.cfgs], device=device)
        g.inputs.new_epoch(data, g.gens, 1.0, alphas)
        groups.append(g)
    return make_step(mode, groups), groups


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def profile(cfgs, data, device, mode="eager", matmul="fp32", steps=50, max_runs=None) -> dict:
    """ops, kernels (CUDA), ms per step and matmul FLOPs of one step of `cfgs` together."""
    with matmul_precision(matmul):
        step, groups = build_step(cfgs, data, device, "eager", max_runs)
        step()  # first step: lazy state (Adam moments, sums)
        counter = _Count()
        with counter:
            step()
        out = {"runs": len(cfgs), "groups": len(groups), "ops": sum(counter.ops.values())}
        out["top_ops"] = dict(counter.ops.most_common(8))
        if device.type == "cuda":
            out |= _cuda_kernels(step)
        timed, timed_groups = step, groups
        if mode != "eager":
            timed, timed_groups = build_step(cfgs, data, device, mode, max_runs)
        n_batches = groups[0].inputs.n_batches

        def call(i: int) -> None:  # stay inside the epoch's draws: rewind the step counter
            if i % n_batches == 0:
                for g in timed_groups:
                    g.inputs.step.zero_()
            timed()

        warm = 5 if mode == "eager" else 8  # graph: warm-up steps and the capture
        for i in range(warm):
            call(i)
        _sync(device)
        start = time.perf_counter()
        for i in range(warm, warm + steps):
            call(i)
        _sync(device)
        out["ms"] = 1000 * (time.perf_counter() - start) / steps
        out["mode"] = getattr(timed, "mode", mode)
    out["matmul_gflop"] = step_flops(cfgs) / 1e9
    out["gflops"] = out["matmul_gflop"] / (out["ms"] / 1000)
    return out


def _cuda_kernels(step) -> dict:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    torch.cuda.synchronize()
    with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
    kernels = [e for e in kernels if "memcpy" not in e.name.lower()]
    matmul_us = sum(e.device_time for e in kernels if MATMUL_KERNEL.search(e.name))
    return {
        "kernels": len(kernels),
        "kernel_ms": sum(e.device_time for e in kernels) / 1000,
        "matmul_kernel_ms": matmul_us / 1000,
    }


def compare(cfgs, data, device, mode, matmul, steps, max_runs=None) -> dict:
    """The whole plan in one step (groups cut into parts of `max_runs`), and each group
    alone, uncut (the per-group baseline)."""
    by_group: dict[str, list] = {}
    for cfg in cfgs:
        by_group.setdefault(group_name(cfg), []).append(cfg)
    whole = profile(cfgs, data, device, mode, matmul, steps, max_runs)
    report = {"whole_plan": {**whole, "max_group_runs": max_runs}, "alone": {}}
    for name, members in by_group.items():
        report["alone"][name] = profile(members, data, device, mode, matmul, steps)
    if len(by_group.get("jmvae_kl-z64", [])) > 5:  # the 5-run group measured before
        five = [c for c in by_group["jmvae_kl-z64"] if c.model.alpha == 0.1][:5]
        report["alone"]["jmvae_kl-z64 (5 runs, alpha 0.1)"] = profile(
            five, data, device, mode, matmul, steps
        )
    report["groups_one_after_another_ms"] = sum(
        r["ms"] for name, r in report["alone"].items() if name in by_group
    )
    return report


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--mode", default="eager", choices=("eager", "graph", "compile-graph"))
    p.add_argument("--matmul", default="fp32", choices=("fp32", "tf32"))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--n-train", type=int, default=3000)
    p.add_argument("--max-group-runs", type=int, default=None, help="cut groups for the plan")
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    data = load_mnist(device=device, n_train=args.n_train, n_test=100)
    cfgs = plan("paper", epochs=1)
    peak = matmul_peak(device, torch.float32)
    if args.matmul == "tf32":
        with matmul_precision("tf32"):
            peak = matmul_peak(device, torch.float32)
    report = {
        "device": device_name(device),
        "torch": torch.__version__.split("+")[0],
        "threads": torch.get_num_threads(),
        "mode": args.mode,
        "matmul": args.matmul,
        "peak_gflops": peak["gflops"],
        "command": "python benchmarks/plan_step.py " + " ".join(argv or sys.argv[1:]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **compare(cfgs, data, device, args.mode, args.matmul, args.steps, args.max_group_runs),
    }
    for row in [report["whole_plan"], *report["alone"].values()]:
        row["peak_fraction"] = row["gflops"] / report["peak_gflops"]
    print_table(report)
    path = write_benchmark(report, args.out, "plan-step")
    print(f"wrote {path}")
    return report


def print_table(r: dict) -> None:
    print(f"\n== {r['device']}, torch {r['torch']}, {r['mode']}, matmul {r['matmul']} ==")
    print(f"{'step of':38s} {'runs':>4s} {'ops':>6s} {'kernels':>7s} {'ms':>8s} {'%peak':>6s}")
    rows = [("whole plan (one step)", r["whole_plan"]), *r["alone"].items()]
    for name, row in rows:
        kernels = str(row.get("kernels", "-"))
        print(
            f"{name:38s} {row['runs']:4d} {row['ops']:6d} {kernels:>7s} {row['ms']:8.2f} "
            f"{100 * row['peak_fraction']:6.1f}"
        )
    print(f"groups one after another: {r['groups_one_after_another_ms']:.2f} ms per step")


if __name__ == "__main__":
    main()
