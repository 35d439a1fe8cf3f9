"""Milliseconds per epoch per run: train.fit (one run) vs fit_batched (R runs), back to back.

Usage: python benchmarks/batched_speed.py --out benchmarks/results/batched_speed.jsonl
       [--rs 1,8,32,64] [--n-train N] [--variant jmvae_kl] [--device cuda] [--threads 1]
       [--per-run-adam | --no-per-run-adam]
On a CPU, shrink the work: --n-train 2000 --rs 1,2,4. Appends one JSON line per measurement
(fit first, then each R) to --out; every line carries the device, the settings and the
command, so lines from different machines can share one file.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

from jmvae_core.config import ALPHAS, make_config
from jmvae_core.data.mnist import load_mnist
from jmvae_core.store import device_name
from jmvae_core.training.batched import fit_batched
from jmvae_core.training.fit import fit, pick_device


def run_configs(variant: str, runs: int, n_train: int | None):
    """R quick-profile runs of one architecture: seeds 1..R (JMVAE-kl cycles the alphas)."""
    return [
        make_config(
            "quick",
            variant=variant,
            alpha=ALPHAS[r % len(ALPHAS)],
            seed=r + 1,
            epochs=1,
            n_train=n_train,
        )
        for r in range(runs)
    ]


def epoch_ms(history: list[dict]) -> float:
    """The whole epoch's wall time in ms (fit_batched records each run's share)."""
    row = history[-1]
    return 1000 * row["time_s"] * row.get("batch_runs", 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON-lines file (appended)")
    parser.add_argument("--rs", default="1,8,32,64", help="comma-separated numbers of runs")
    parser.add_argument("--n-train", type=int, default=None, help="training subset (default all)")
    parser.add_argument("--variant", default="jmvae_kl")
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default torch's)")
    parser.add_argument(
        "--per-run-adam",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Adam over per-run views (default: on a CPU only)",
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    data = load_mnist(device=device, n_train=args.n_train)
    n = data.x_train.shape[0]
    # untimed warm-up (library initialisation, kernel selection, allocator) on 10 batches
    warm = load_mnist(device=device, n_train=1000)
    fit_batched(run_configs(args.variant, 2, 1000), warm, device, progress=False)
    common = {
        "device": device_name(device),
        "torch": torch.__version__.split("+")[0],
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "variant": args.variant,
        "n_train": n,
        "command": "python benchmarks/batched_speed.py " + " ".join(sys.argv[1:]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    lines = []
    _, history = fit(run_configs(args.variant, 1, args.n_train)[0], data, None, device, False)
    fit_ms = epoch_ms(history)
    lines.append(
        {
            **common,
            "name": "fit",
            "runs": 1,
            "ms_per_epoch": round(fit_ms, 1),
            "ms_per_epoch_per_run": round(fit_ms, 1),
            "speedup_vs_fit": 1.0,
        }
    )
    print(f"fit         : {fit_ms:9.1f} ms/epoch")
    for runs in (int(r) for r in args.rs.split(",")):
        cfgs = run_configs(args.variant, runs, args.n_train)
        _, histories = fit_batched(
            cfgs, data, device, progress=False, per_run_adam=args.per_run_adam
        )
        total = epoch_ms(histories[0])
        per_run = total / runs
        lines.append(
            {
                **common,
                "name": "fit_batched",
                "runs": runs,
                "per_run_adam": args.per_run_adam,
                "ms_per_epoch": round(total, 1),
                "ms_per_epoch_per_run": round(per_run, 1),
                "speedup_vs_fit": round(fit_ms / per_run, 3),
            }
        )
        print(
            f"batched R={runs:<3}: {total:9.1f} ms/epoch, {per_run:9.1f} ms/epoch/run, "
            f"{fit_ms / per_run:6.2f}x fit"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
