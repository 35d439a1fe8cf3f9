"""One run end to end: train (resumable), evaluate every estimator, write the results contract."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from . import estimators, results
from .config import RunConfig
from .data import load_mnist
from .train import fit, pick_device


def run_one(cfg: RunConfig, profile: str, device=None, root: Path | None = None, progress=True):
    """Train and evaluate one run into results/<profile>/runs/<run_id>/; return its metrics.

    A run already marked DONE is read back, not recomputed. An interrupted run resumes from
    its checkpoint. `DONE` is written last, so a crash never leaves a readable half-result.
    """
    folder = results.run_dir(profile, cfg.run_id, root)
    if results.is_done(folder):
        return results.read_json(folder / "metrics.json")
    device = pick_device(device)
    start = time.perf_counter()
    results.write_json(folder / "config.json", {"profile": profile, **cfg.to_dict()})
    data = load_mnist(
        device=device,
        test_binarize_seed=cfg.eval.test_binarize_seed,
        n_train=cfg.train.n_train,
        n_test=cfg.eval.n_test,
    )
    model, history = fit(cfg, data, folder, device=device, progress=progress)
    results.write_text(folder / "history.csv", pd.DataFrame(history).to_csv(index=False))
    values = estimators.evaluate(
        model,
        data.x_test,
        data.w_test,
        k=cfg.eval.k,
        n_prior=cfg.eval.n_prior,
        seed=cfg.eval.eval_seed,
        progress=progress,
    )
    metrics = {
        "variant": cfg.model.variant,
        "dataset": cfg.dataset,
        "alpha": cfg.model.alpha if cfg.model.variant == "jmvae_kl" else None,
        "latent_dim": cfg.model.latent_dim,
        "seed": cfg.train.seed,
        "profile": profile,
        "epochs": cfg.train.epochs,
        "run_id": cfg.run_id,
        "estimators": {
            name: {**estimators.summarize(v), "k": cfg.eval.k, "n_test": len(v)}
            for name, v in values.items()
        },
        "accuracy": _accuracy(model, data),
        "test_hash": data.test_hash,
        "test_binarize_seed": data.test_binarize_seed,
        "train_time_s": round(sum(row["time_s"] for row in history), 2),
        "wall_time_s": round(time.perf_counter() - start, 2),
        **results.provenance(device),
    }
    arrays = {f"log_p_{name}": v.astype(np.float32) for name, v in values.items()}
    results.atomic_write_bytes(folder / "arrays.npz", _npz_bytes(arrays))
    results.write_json(folder / "metrics.json", metrics)
    results.mark_done(folder)
    return metrics


def _accuracy(model, data) -> dict:
    if not hasattr(model, "p_w_z"):
        return {}
    with torch.no_grad():
        return estimators.label_accuracy(model, data.x_test, data.w_test)


def _npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()
