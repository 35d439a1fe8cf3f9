"""Does bfloat16 training move the final log p(x)? Paired runs, float32 vs bfloat16 autocast.

For each seed, the quick-profile JMVAE-kl (alpha 0.1) is trained twice, once per
TrainConfig.precision, on one thread; both are scored by the same float32 estimator
(marginal log p(x), k importance samples, the same draws) on the first n test images.
Usage: python benchmarks/bf16_training.py [--seeds 1 2 3] [--epochs 12] [--n-test 2000]
       [--k 1000] [--out benchmarks/results]
Writes <out>/<device-slug>-bf16-training.json: per seed and precision the estimate, the
training seconds per epoch, and the paired differences.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jmvae_core.config import make_config
from jmvae_core.data.mnist import load_mnist
from jmvae_core.measure import estimators
from jmvae_core.store import device_name
from jmvae_core.training.fit import fit


def _command() -> str:
    """The command line without --out (a machine's folder does not belong in the record)."""
    argv, kept = sys.argv[1:], []
    skip = False
    for arg in argv:
        if skip or arg == "--out":
            skip = not skip
            continue
        kept.append(arg)
    return " ".join(["python benchmarks/bf16_training.py", *kept])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_mnist(n_train=args.n_train, n_test=args.n_test)
    rows = []
    for seed in args.seeds:
        for precision in ("fp32", "bf16"):
            cfg = make_config(
                "quick", variant="jmvae_kl", alpha=0.1, seed=seed, epochs=args.epochs,
                n_train=args.n_train, precision=precision,
            )  # fmt: skip
            model, history = fit(cfg, data, progress=False)
            start = time.perf_counter()
            values = estimators.evaluate(
                model, data.x_test, data.w_test, names=["marginal"], k=args.k, seed=0,
                progress=False, precision="fp32",
            )["marginal"]  # fmt: skip
            rows.append({
                "seed": seed, "precision": precision, "run_id": cfg.run_id,
                "marginal": float(values.mean()), "per_image": values.round(4).tolist(),
                "final_loss": history[-1]["loss"],
                "epoch_s": [row["time_s"] for row in history],
                "eval_s": round(time.perf_counter() - start, 2),
            })  # fmt: skip
            print(f"seed {seed} {precision}: log p(x) {values.mean():.3f}, "
                  f"epoch {np.median(rows[-1]['epoch_s']):.2f} s", flush=True)  # fmt: skip
    pairs = []
    for seed in args.seeds:
        a, b = (next(r for r in rows if r["seed"] == seed and r["precision"] == p)
                for p in ("fp32", "bf16"))  # fmt: skip
        pairs.append(b["marginal"] - a["marginal"])
    diffs = np.array(pairs)
    summary = {
        "mean_shift": float(diffs.mean()),
        "sem_shift": float(diffs.std(ddof=1) / np.sqrt(len(diffs))) if len(diffs) > 1 else None,
        "shifts": pairs,
        "speedup_median_epoch": float(
            np.median([np.median(r["epoch_s"]) for r in rows if r["precision"] == "fp32"])
            / np.median([np.median(r["epoch_s"]) for r in rows if r["precision"] == "bf16"])
        ),
    }
    print(json.dumps(summary, indent=1))
    device = device_name(torch.device("cpu"))
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    args.out.mkdir(parents=True, exist_ok=True)
    out = {
        "device": device, "threads": args.threads, "command": _command(),
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "summary": summary, "runs": rows,
    }  # fmt: skip
    (args.out / f"{slug}-bf16-training.json").write_text(
        json.dumps(out, separators=(",", ":")) + "\n"
    )


if __name__ == "__main__":
    main()
