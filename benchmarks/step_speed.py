"""Where one training step's time goes, today's step against the reference step, side by side.

Usage: python benchmarks/step_speed.py [--threads 1,2] [--epochs 3] [--steps 200]
           [--n-train 60000] [--out benchmarks/results]

For JMVAE-kl (alpha = 0.1, the authors' architecture, batch 100, fp32, CPU), at each thread
count, in one process:
- parts: milliseconds per step of the forward pass (noise and objective), the backward pass,
  the clipping and Adam, for `jmvae_core.training.fit._step` and for benchmarks/reference_step.py
  (torch's two clipping calls), in alternating blocks of --steps steps from the same state;
- epochs: `fit` and `fit` with the reference step, epoch by epoch in turn (fit's own epoch
  hook runs the reference epoch), on --n-train images from the same seed; the two models'
  weights are compared at the end (they must be equal: the steps differ only in passes that
  change no value);
- the matmul FLOPs a step needs (from the layer shapes: forward, weight gradients, and input
  gradients of every layer but those reading the data) against the measured matmul peak.
Writes <out>/<device-slug>-step-speed.json and prints a table.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import reference_step  # noqa: E402
from speed import matmul_peak  # noqa: E402

from jmvae_core.config import make_config  # noqa: E402
from jmvae_core.data.mnist import load_mnist  # noqa: E402
from jmvae_core.models import build_model  # noqa: E402
from jmvae_core.nn.networks import draw_noise  # noqa: E402
from jmvae_core.store import device_name, write_benchmark  # noqa: E402
from jmvae_core.training import fit  # noqa: E402

PARTS = ("forward", "backward", "clip", "adam")


def cpu_model() -> dict:
    """The CPU's model name and the vector extensions a matmul can use (Linux; else platform)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {"model": platform.processor() or platform.machine(), "flags": []}
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                 if line.startswith("model name")), platform.machine())  # fmt: skip
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines()
                  if line.startswith("flags")), [])  # fmt: skip
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return {"model": name, "flags": [f for f in wanted if f in flags]}


# JMVAE-kl's layers whose input is the data (x or w): their input gradient is never computed
DATA_LAYERS = {"q_z_xw.x_branch.0", "q_z_xw.w_branch.0", "q_z_x.trunk.0", "q_z_w.trunk.0"}


def report_head(script: str) -> dict:
    """What every CPU step benchmark's report opens with: the machine, torch, the command."""
    return {
        "device": device_name(torch.device("cpu")),
        "cpu": cpu_model(),
        "torch": torch.__version__.split("+")[0],
        "command": f"python benchmarks/{script} " + " ".join(sys.argv[1:]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def machine_line(r: dict) -> str:
    return (
        f"{r['device']}, {r['cpu']['model']} ({', '.join(r['cpu']['flags'])}), torch {r['torch']}"
    )


def step_gflop(model: nn.Module) -> float:
    """Matmul GFLOP of one step, batch 100: forward and weight gradient of every layer, input
    gradient of every layer but DATA_LAYERS."""
    layers = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    assert DATA_LAYERS <= set(layers), sorted(layers)
    macs = {name: m.in_features * m.out_features for name, m in layers.items()}
    passes = sum((2 if name in DATA_LAYERS else 3) * n for name, n in macs.items())
    return 2 * 100 * passes / 1e9


def _setup(cfg, seed=1):
    torch.manual_seed(seed)
    model = build_model(cfg.model)
    return model, fit.make_optimizers(model, cfg.train, torch.device("cpu"))


def _batch(data, i: int, gen):
    """The i-th batch of 100 training images (cycling), binarised from `gen`, and its labels."""
    b = i % (data.x_train.shape[0] // 100)
    x = torch.bernoulli(data.x_train[100 * b : 100 * (b + 1)], generator=gen)
    return x, data.w_train[100 * b : 100 * (b + 1)]


def _loss(model, x, w, gen):
    """The step's objective at full warm-up (beta = 1, the model's alpha)."""
    eps = draw_noise(gen, x, model.spec.noise_dim(model.cfg.latent_dim))
    return model.spec.objective(model, x, w, eps, 1.0, model.cfg.alpha)["loss"]


def part_times(cfg, data, steps: int, blocks: int = 3) -> dict[str, dict[str, float]]:
    """ms per step of each part, for "fit" (train's clipping) and "reference" (torch's calls).

    Both start from the same weights; blocks of `steps` steps alternate between the two so
    that machine drift reaches both; the mean over the blocks is reported.
    """
    clips = {"fit": fit.clip_gradients, "reference": reference_step.clip_gradients}
    states = {kind: _setup(cfg) for kind in clips}
    gen = torch.Generator().manual_seed(1)
    sums = {kind: dict.fromkeys(PARTS, 0.0) for kind in clips}
    for block in range(blocks + 1):  # block 0 warms up and is not counted
        for kind, clip in clips.items():
            model, opts = states[kind]
            params = opts["all"].param_groups[0]["params"]
            for i in range(steps):
                x, w = _batch(data, block * steps + i, gen)
                t0 = time.perf_counter()
                loss = _loss(model, x, w, gen)
                t1 = time.perf_counter()
                opts["all"].zero_grad(set_to_none=True)
                loss.backward()
                t2 = time.perf_counter()
                clip(params, cfg.train)
                t3 = time.perf_counter()
                opts["all"].step()
                t4 = time.perf_counter()
                if block:
                    for part, dt in zip(PARTS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                        sums[kind][part] += dt
    return {
        kind: {part: 1e3 * s / (blocks * steps) for part, s in parts.items()}
        for kind, parts in sums.items()
    }


def clipping_needed(cfg, data, steps: int) -> dict:
    """Over `steps` of fit's steps from the initial weights: the range of the gradient norm
    before clipping, and of the number of gradient tensors whose rescaled norm reaches 0.99
    of the element bound (the only ones fit.clip_gradients clamps)."""
    model, opts = _setup(cfg)
    gen = torch.Generator().manual_seed(1)
    params, tc = opts["all"].param_groups[0]["params"], cfg.train
    norms_seen, counts = [], []
    for i in range(steps):
        opts["all"].zero_grad(set_to_none=True)
        _loss(model, *_batch(data, i, gen), gen).backward()
        norms = torch.stack([p.grad.norm() for p in params])
        total = float(norms.norm())
        coef = min(1.0, tc.clip_norm / (total + 1e-6))
        norms_seen.append(total)
        counts.append(int((norms * coef >= 0.99 * tc.clip_value).sum()))
        fit.clip_gradients(params, tc)
        opts["all"].step()
    return {
        "steps": steps,
        "grad_norm_range": [round(min(norms_seen), 2), round(max(norms_seen), 2)],
        "tensors": len(params),
        "tensors_to_clamp_range": [min(counts), max(counts)],
    }


MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def matmul_ms(cfg, data, steps: int = 30) -> float:
    """ms per step inside matmul operations (the profiler's self time) of fit._step."""
    model, opts = _setup(cfg)
    gen = torch.Generator().manual_seed(1)

    def run(n):
        for i in range(n):
            fit._step(model, opts, *_batch(data, i, gen), gen, 1.0, 1.0, cfg.train)

    run(10)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run(steps)
    us = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key in MATMULS)
    return us / 1e3 / steps


def epoch_times(cfg, data) -> tuple[list[float], list[float], bool]:
    """Seconds per epoch of fit and of fit with the reference step, epoch by epoch in turn;
    and whether the two models' weights are equal at the end."""
    ref_model, ref_opts = _setup(cfg, cfg.train.seed)
    ref_gen = torch.Generator().manual_seed(cfg.train.seed)
    ref_times: list[float] = []

    def reference_epoch(row):
        start = time.perf_counter()
        with reference_step.in_fit():
            fit._run_epoch(ref_model, ref_opts, data, cfg, row["epoch"] - 1, ref_gen)
        ref_times.append(round(time.perf_counter() - start, 3))

    model, history = fit.fit(cfg, data, progress=False, on_epoch_end=reference_epoch)
    equal = all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), ref_model.state_dict().values(), strict=True)
    )
    return [row["time_s"] for row in history], ref_times, equal


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    torch.set_flush_denormal(True)  # as fit sets it, for the part timings too
    data = load_mnist(n_train=args.n_train)
    cfg = make_config("paper", variant="jmvae_kl", alpha=0.1, epochs=args.epochs)
    gflop = step_gflop(build_model(cfg.model))
    report = {
        **report_head("step_speed.py"),
        "n_train": int(data.x_train.shape[0]),
        "step_gflop": gflop,
        "clipping": clipping_needed(cfg, data, 4 * args.steps),
        "by_threads": [],
    }
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        print(f"{threads} thread(s): matmul peak, parts, epochs", flush=True)
        peak = matmul_peak(torch.device("cpu"), torch.float32)["gflops"]
        parts = part_times(cfg, data, args.steps)
        in_matmuls = matmul_ms(cfg, data)
        fit_s, ref_s, equal = epoch_times(cfg, data)
        report["by_threads"].append({
            "threads": threads,
            "peak_gflops": peak,
            "parts_ms": parts,
            "fit_epoch_s": fit_s,
            "reference_epoch_s": ref_s,
            "speedup": sum(ref_s[1:]) / sum(fit_s[1:]) if len(fit_s) > 1 else ref_s[0] / fit_s[0],
            "weights_equal": equal,
            "matmul_ms_at_peak": 1e3 * gflop / peak,
            "matmul_ms_in_step": in_matmuls,
        })  # fmt: skip
    path = write_benchmark(report, args.out, "step-speed")
    print_table(report)
    print(f"wrote {path}")


def print_table(r: dict) -> None:
    print(machine_line(r))
    for row in r["by_threads"]:
        print(f"{row['threads']} thread(s), matmul peak {row['peak_gflops']:.0f} GFLOP/s:")
        for kind, parts in row["parts_ms"].items():
            total = sum(parts.values())
            cells = ", ".join(f"{p} {ms:.2f}" for p, ms in parts.items())
            print(f"  {kind:9s} step {total:.2f} ms ({cells})")
        print(
            f"  matmuls: {row['matmul_ms_in_step']:.2f} ms per step "
            f"({row['matmul_ms_at_peak']:.2f} at the peak)"
        )
        print(
            f"  epochs: fit {row['fit_epoch_s']} s, reference {row['reference_epoch_s']} s, "
            f"{row['speedup']:.3f}x after the first; weights equal: {row['weights_equal']}"
        )


if __name__ == "__main__":
    main()
