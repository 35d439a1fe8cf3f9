"""Does bfloat16 move the likelihood estimates? Every estimator of every MNIST variant, paired.

Usage (torch and numpy only; the GPU study script calls `measure` on its trained runs):
    python benchmarks/estimator_precision.py [--device cpu] [--epochs 3] [--n-train 60000]
        [--n-test 500] [--k 1000] [--out benchmarks/results]

One run per variant (latent 64, alpha 0.1, seed 1) is trained for --epochs epochs (train.fit),
then each estimator of the book's protocol runs twice on the first --n-test test images with
the same k draws (the same generator seed): decoders in float32 and in bfloat16 (sums in
float32). Per estimator: the mean over images of the per-image difference bf16 - fp32, its
standard error, and the largest per-image difference. The study's rule: bfloat16 may serve an
estimator only where |mean shift| < LIMIT nats (0.1); `decide` applies it to a whole table.
Writes <out>/<device-slug>-estimator-precision.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from jmvae_core.config import VARIANTS, make_config  # noqa: E402
from jmvae_core.data.mnist import load_mnist  # noqa: E402
from jmvae_core.measure import estimators  # noqa: E402
from jmvae_core.store import device_name, write_benchmark  # noqa: E402
from jmvae_core.training.fit import fit  # noqa: E402

LIMIT = 0.1  # nats: the largest mean shift under which bfloat16 may serve an estimator


def measure(model, x, w, k=1000, n_prior=5000, seed=0) -> dict:
    """{estimator: {"shift", "sem", "max_abs", "n"}} of bf16 - fp32 on the same draws."""
    out = {}
    kw = {"k": k, "n_prior": n_prior, "seed": seed, "progress": False}
    fp32 = estimators.evaluate(model, x, w, precision="fp32", **kw)
    bf16 = estimators.evaluate(model, x, w, precision="bf16", **kw)
    for name, reference in fp32.items():
        diff = bf16[name] - reference
        out[name] = {
            "shift": float(diff.mean()),
            "sem": float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else None,
            "max_abs": float(np.abs(diff).max()),
            "n": len(diff),
        }
    return out


def decide(table: dict[str, dict[str, dict]], limit: float = LIMIT) -> str:
    """ "bf16" if every estimator of every variant in `table` moved by less than `limit`."""
    shifts = [abs(row["shift"]) for per_variant in table.values() for row in per_variant.values()]
    return "bf16" if shifts and max(shifts) < limit else "fp32"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--n-train", type=int, default=None)
    p.add_argument("--n-test", type=int, default=500)
    p.add_argument("--k", type=int, default=1000)
    p.add_argument("--n-prior", type=int, default=5000)
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    data = load_mnist(device=device, n_train=args.n_train, n_test=args.n_test)
    table = {}
    for variant in VARIANTS:
        cfg = make_config("quick", variant=variant, alpha=0.1, seed=1, epochs=args.epochs,
                          n_train=args.n_train)  # fmt: skip
        model, _ = fit(cfg, data, device=device, progress=False)
        table[variant] = measure(model.eval(), data.x_test, data.w_test, args.k, args.n_prior)
        print(variant, json.dumps(table[variant]), flush=True)
    report = {
        "device": device_name(device),
        "torch": torch.__version__.split("+")[0],
        "command": "python benchmarks/estimator_precision.py " + " ".join(argv or sys.argv[1:]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "epochs": args.epochs,
        "k": args.k,
        "n_test": data.x_test.shape[0],
        "limit": LIMIT,
        "decision": decide(table),
        "shifts": table,
    }
    path = write_benchmark(report, args.out, "estimator-precision")
    print(f"decision: {report['decision']}; wrote {path}")
    return report


if __name__ == "__main__":
    main()
