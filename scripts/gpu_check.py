"""Device check: train JMVAE-kl for a few epochs and time the k=1000 estimator on one device.

Needs only torch, numpy and tqdm (no notebook stack), so it runs on a bare GPU machine:
    python scripts/gpu_check.py --out OUT_DIR [--epochs 3] [--n-test 10000] [--device cuda]
Writes OUT_DIR/device_check.json with per-epoch times, the estimates and the device name.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jmvae_core.config import make_config
from jmvae_core.data.mnist import load_mnist
from jmvae_core.measure import estimators
from jmvae_core.store import device_name
from jmvae_core.training.fit import fit, pick_device


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n-test", type=int, default=10000)
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    device = pick_device(args.device)
    data = load_mnist(device=device, n_train=args.n_train, n_test=args.n_test)
    cfg = make_config("quick", variant="jmvae_kl", alpha=0.1, epochs=args.epochs,
                      n_train=args.n_train, k=args.k, n_test=args.n_test)  # fmt: skip
    model, history = fit(cfg, data, device=device, progress=False)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    values = estimators.evaluate(
        model, data.x_test, data.w_test, k=args.k, seed=123, progress=False
    )
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    report = {
        "device": device_name(device),
        "torch": torch.__version__,
        "epochs": [{k: row[k] for k in ("epoch", "loss", "time_s")} for row in history],
        "all_estimators_seconds": round(seconds, 2),
        "k": args.k,
        "n_test": args.n_test,
        "estimates": {n: estimators.summarize(v) for n, v in values.items()},
        "accuracy": estimators.label_accuracy(model, data.x_test, data.w_test),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "device_check.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
