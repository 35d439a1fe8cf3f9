"""Seconds per epoch: the plain reference loop vs `jmvae_core.training.fit.fit`, back to back.

Usage: python benchmarks/epoch_speed.py [--epochs 2] [--eval-k 1000] [--out benchmarks/results]
Writes <out>/<device-slug>.json with one entry per figure (name, value, unit, command).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference_loop  # noqa: E402

from jmvae_core.config import make_config
from jmvae_core.data.mnist import load_mnist
from jmvae_core.measure import estimators
from jmvae_core.store import device_name
from jmvae_core.training.fit import fit


def interleaved_epochs(data, epochs):
    """Epoch e of fit(), then epoch e of the reference loop, for e = 1..epochs.

    Interleaving keeps both exposed to the same machine drift. Each runs with its own
    setting of subnormal flushing: fit() flushes them, the plain loop keeps PyTorch's default.
    """
    ref_model, ref_opt = reference_loop.make()
    ref_times = []

    def reference_epoch(_row):
        torch.set_flush_denormal(False)
        start = time.perf_counter()
        reference_loop.train_epoch(ref_model, ref_opt, data.x_train, data.w_train)
        ref_times.append(time.perf_counter() - start)
        torch.set_flush_denormal(True)

    cfg = make_config("quick", variant="jmvae_kl", alpha=0.1, epochs=epochs)
    model, history = fit(cfg, data, progress=False, on_epoch_end=reference_epoch)
    return ref_times, [row["time_s"] for row in history], model


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--eval-k", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    device = torch.device("cpu")
    data = load_mnist()
    command = "python benchmarks/epoch_speed.py " + " ".join(sys.argv[1:])
    ref, ours, model = interleaved_epochs(data, args.epochs)
    entries = []
    for e in range(args.epochs):
        entries += [
            {"name": f"reference_loop_epoch{e + 1}", "value": round(ref[e], 2), "unit": "s"},
            {"name": f"fit_epoch{e + 1}", "value": round(ours[e], 2), "unit": "s"},
            {"name": f"speedup_epoch{e + 1}", "value": round(ref[e] / ours[e], 3), "unit": "x"},
        ]
    entries += [
        {"name": "reference_loop_total", "value": round(sum(ref), 2), "unit": "s"},
        {"name": "fit_total", "value": round(sum(ours), 2), "unit": "s"},
        {"name": "speedup_total", "value": round(sum(ref) / sum(ours), 3), "unit": "x"},
    ]
    if args.eval_k:
        start = time.perf_counter()
        values = estimators.evaluate(
            model, data.x_test, data.w_test, names=["marginal"], k=args.eval_k, progress=False
        )
        seconds = time.perf_counter() - start
        entries.append(
            {
                "name": f"marginal_k{args.eval_k}_10k_test",
                "value": round(seconds, 1),
                "unit": "s",
                "n_test": len(values["marginal"]),
            }
        )
    for entry in entries:
        entry["command"] = command
    report = {
        "device": device_name(device),
        "torch": torch.__version__.split("+")[0],
        "python": platform.python_version(),
        "entries": entries,
    }
    slug = re.sub(r"[^a-z0-9]+", "-", report["device"].lower()).strip("-")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{slug}.json").write_text(json.dumps(report, indent=2) + "\n")
    for entry in entries:
        print(f"{entry['name']:>28}: {entry['value']} {entry['unit']}")


if __name__ == "__main__":
    main()
