"""One digest of what the package computes, to show that a change of its code changes no number.

Usage: python scripts/numeric_digest.py [--out digest.json]
Run it before and after a change (e.g. in two checkouts) and compare the printed digests; the
JSON lists one hash per item, so a difference names what moved. Covered, on one CPU thread:
- the run ids of every profile's plan, for every dataset;
- every MNIST model: weights and loss terms after one epoch on 300 images (smoke architecture),
  each estimator on 40 test images (k = 16) in float32 and bfloat16, label accuracy, the
  figures' arrays and the label -> image -> label coherence;
- every face model on the stand-in (smoke profile): weights and loss terms after one epoch,
  the figures' arrays and the attribute estimation.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jmvae_core import models
from jmvae_core.config import DATASETS, PROFILES, make_config, plan
from jmvae_core.data import faces as face_data
from jmvae_core.data.mnist import load_mnist
from jmvae_core.measure import estimators, faces, generate
from jmvae_core.training.fit import fit


def digest(value) -> str:
    """sha256 (16 hex digits) of tensors, arrays, frames and plain values, nested."""
    h = hashlib.sha256()

    def feed(v):
        if isinstance(v, torch.Tensor):
            v = v.detach().cpu().numpy()
        if isinstance(v, np.ndarray):
            h.update(str((v.dtype, v.shape)).encode())
            h.update(np.ascontiguousarray(v).tobytes())
        elif isinstance(v, dict):
            for k in sorted(v):
                h.update(str(k).encode())
                feed(v[k])
        elif isinstance(v, (list, tuple)):
            for item in v:
                feed(item)
        elif hasattr(v, "to_csv"):  # a pandas frame
            buffer = io.StringIO()
            v.to_csv(buffer, float_format="%.17g")
            h.update(buffer.getvalue().encode())
        else:
            h.update(repr(v).encode())

    feed(value)
    return h.hexdigest()[:16]


def losses(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time_s"} for row in history]


def mnist_items() -> dict[str, str]:
    data = load_mnist(n_train=300, n_test=40)
    out = {}
    for variant in models.names("mnist"):
        cfg = make_config("smoke", variant=variant, epochs=1, n_train=300)
        model, history = fit(cfg, data, progress=False)
        out[f"{variant}/weights"] = digest(model.state_dict())
        out[f"{variant}/losses"] = digest(losses(history))
        for precision in ("fp32", "bf16"):
            values = estimators.evaluate(
                model, data.x_test, data.w_test, k=16, n_prior=50, progress=False,
                precision=precision,
            )  # fmt: skip
            out[f"{variant}/estimates_{precision}"] = digest(values)
        out[f"{variant}/figures"] = digest(generate.figure_arrays(model, data.x_test,
                                                                  data.w_test, 1))  # fmt: skip
        if hasattr(model, "p_w_z"):  # the models that infer labels (as runs._accuracy)
            out[f"{variant}/accuracy"] = digest(estimators.label_accuracy(model, data.x_test,
                                                                          data.w_test))  # fmt: skip
            out[f"{variant}/coherence"] = digest(
                generate.coherence(model, torch.Generator().manual_seed(1), n=20)
            )
    return out


def face_items() -> dict[str, str]:
    out = {}
    for variant in models.names("faces"):
        cfg = make_config("smoke", dataset="standin", variant=variant, epochs=1)
        data = face_data.load_faces(cfg, "cpu", progress=False)
        model, history = fit(cfg, data, progress=False)
        out[f"{variant}/weights"] = digest(model.state_dict())
        out[f"{variant}/losses"] = digest(losses(history))
        out[f"{variant}/figures"] = digest(faces.face_arrays(model, data))
        if model.p_w_z is not None:  # the models that estimate attributes (as runs.py)
            out[f"{variant}/attributes"] = digest(faces.attribute_estimation(model, data))
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    items = {
        f"plan/{profile}/{dataset}": digest([c.run_id for c in plan(profile, dataset=dataset)])
        for profile in PROFILES
        for dataset in DATASETS
    }
    items |= mnist_items()
    items |= face_items()
    whole = digest(items)
    if args.out:
        args.out.write_text(json.dumps({"digest": whole, "items": items}, indent=1) + "\n")
    print(f"digest {whole} over {len(items)} items")


if __name__ == "__main__":
    main()
