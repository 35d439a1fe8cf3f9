"""One run end to end: train (resumable), evaluate every estimator, write the results contract.

A run folder passes through two markers: TRAINED (weights and history final) and DONE
(metrics and arrays written). Each is written last in its step, so a killed step is redone
(training resumes from its checkpoint) and no reader ever sees a half-result.
"""

from __future__ import annotations

import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from jmvae_core import data as datasets
from jmvae_core import store
from jmvae_core.config import ALPHA_VARIANTS, RunConfig
from jmvae_core.measure import estimators
from jmvae_core.measure.generate import coherence, figure_arrays, label_to_image
from jmvae_core.models import build_model
from jmvae_core.training.fit import CHECKPOINT, fit, pick_device

TRAINED = store.TRAINED
Run = store.Run  # (config, profile, results folder): what every step below takes
# "fp32", "bf16" or "auto" (default): the estimators' decoder precision (resolve_precision)
PRECISION_ENV = "JMVAE_ESTIMATOR_PRECISION"


RUN_NOTEBOOKS = ("train", "evaluate")


class RunMissing(FileNotFoundError):
    """A step needs a run that has not been produced yet; the message names the command."""


def train_run(run: Run, device=None, progress=True) -> list[dict]:
    """Train (or resume) one run into its folder; return its per-epoch history."""
    import pandas as pd  # not at module level: the GPU script imports this module without it

    cfg, folder = run.cfg, run.folder
    datasets.check(cfg)  # the CLI's checks, before any file
    if run.state() in ("trained", "done"):
        return pd.read_csv(folder / "history.csv").to_dict("records")
    device = pick_device(device)
    started = store.provenance(device)  # the code and threads the training starts with
    store.write_json(folder / "config.json", {"profile": run.profile, **cfg.to_dict()})
    data = datasets.load(cfg, device, progress)
    _, history = fit(cfg, data, folder, device=device, progress=progress)
    store.write_text(folder / "history.csv", pd.DataFrame(history).to_csv(index=False))
    store.write_json(folder / TRAINED, started)
    return history


def load_trained(run: Run, device=None):
    """The trained model of a run (from its checkpoint), in eval mode."""
    folder = run.folder
    if not (folder / TRAINED).exists() or not (folder / CHECKPOINT).exists():
        raise RunMissing(
            f"run {run.id} is not trained in {folder}; "
            f"train it with `jmvae reproduce --profile {run.profile}`"
        )
    device = pick_device(device)
    model = build_model(run.cfg.model).to(device)
    model.load_state_dict(store.load_torch(folder / CHECKPOINT, device)["model"])
    return model.eval()


def evaluate_run(run: Run, device=None, progress=True) -> dict:
    """Every estimator of the run's variant, label accuracy and figure arrays; writes DONE."""
    import pandas as pd

    datasets.check(run.cfg)
    if run.state() == "done":
        return run.metrics()
    device = pick_device(device)
    model = load_trained(run, device)
    data = datasets.load(run.cfg, device)
    history = pd.read_csv(run.folder / "history.csv").to_dict("records")
    return write_evaluation(run, model, data, history, device, progress)


def write_evaluation(
    run: Run, model, data, history: list[dict], device, progress=True,
    extra: dict | None = None, precision: str | None = None,
):  # fmt: skip
    """The evaluation step of a trained run, given its model, data and history rows:
    metrics.json (with `extra`), arrays.npz, then DONE. Needs torch and numpy only for MNIST
    (the GPU script calls it after batched training). `precision` of the estimators' decoders:
    None for the environment's PRECISION_ENV, else "auto" (estimators.resolve_precision)."""
    start = time.perf_counter()
    cfg, profile, folder = run.cfg, run.profile, run.folder
    e = cfg.eval
    # the metrics record the precision used
    precision = estimators.resolve_precision(
        precision or os.environ.get(PRECISION_ENV, "auto"), model, data.x_test.device
    )
    values = estimators.evaluate(
        model, data.x_test, data.w_test, k=e.k, n_prior=e.n_prior, seed=e.eval_seed,
        progress=progress, precision=precision,
    )  # fmt: skip
    eval_time = time.perf_counter() - start
    train_time = float(sum(row["time_s"] for row in history))
    digits = model.spec.family == "mnist"  # the digit judge, the probe and the figures' arrays
    metrics = {
        "variant": cfg.model.variant,
        "dataset": cfg.dataset,
        "alpha": cfg.model.alpha if cfg.model.variant in ALPHA_VARIANTS else None,
        "latent_dim": cfg.model.latent_dim,
        "seed": cfg.train.seed,
        "profile": profile,
        "epochs": cfg.train.epochs,
        "run_id": cfg.run_id,
        "estimators": {
            name: {**estimators.summarize(v), "k": e.k, "n_test": len(v)}
            for name, v in values.items()
        },
        "accuracy": _accuracy(model, data, e.eval_seed) if digits else {},
        "final_loss": float(history[-1]["loss"]),
        "test_hash": data.test_hash,
        "test_binarize_seed": getattr(data, "test_binarize_seed", None),
        "train_time_s": round(train_time, 2),
        "eval_time_s": round(eval_time, 2),
        "estimator_precision": precision,
        "wall_time_s": round(train_time + eval_time, 2),
        **store.provenance(device),
        **(extra or {}),
    }
    if digits:
        arrays = figure_arrays(model, data.x_test, data.w_test, seed=e.eval_seed)
        judged, per_digit = _judged_coherence(run, model, device, progress)
        metrics |= judged
        arrays |= per_digit
        _write_probe(folder, cfg, model, data, device)
    else:
        face_metrics, arrays = _face_results(run, model, data, progress)
        metrics |= face_metrics
    # every estimate of every test image, so that two runs can be compared image by image
    per_image = {name: np.asarray(v, dtype=np.float32) for name, v in values.items()}
    store.atomic_write_bytes(folder / store.PER_IMAGE, _npz_bytes(per_image))
    store.atomic_write_bytes(folder / "arrays.npz", _npz_bytes(arrays))
    store.write_json(folder / "metrics.json", metrics)
    store.mark_done(folder)
    return metrics


def _write_probe(folder: Path, cfg: RunConfig, model, data, device) -> None:
    """probe.json: the latent linear probe (jmvae_core.probe) with where and when it was made;
    {"latent_probe": null} for a model without an image-only encoder."""
    from jmvae_core.measure.probe import latent_probe

    record = latent_probe(model, data, cfg.eval.test_binarize_seed)
    stored = {"latent_probe": record, **store.provenance(device)}
    store.write_json(folder / store.PROBE, stored)


def _accuracy(model, data, seed: int) -> dict:
    """Image -> label accuracy (both inference paths) and label -> image coherence."""
    if not hasattr(model, "p_w_z"):
        return {}
    acc = estimators.label_accuracy(model, data.x_test, data.w_test)
    generator = torch.Generator(device=data.x_test.device).manual_seed(seed + 1)
    return {**acc, "w_to_x_coherence": coherence(model, generator)}


def _judged_coherence(run: Run, model, device, progress) -> tuple[dict, dict]:
    """Label -> image coherence read by the independent digit judge (digit_judge), for every
    model that generates from a label: ({"judged_coherence": its record} for the metrics,
    {"judged_coherence_per_digit": rates} for the arrays), both empty for the others."""
    from jmvae_core.measure import digit_judge  # only for models that generate from labels

    cfg, profile, root = run.cfg, run.profile, run.root
    generator = torch.Generator(device=device).manual_seed(cfg.eval.eval_seed + 3)
    images = label_to_image(model, generator, cfg.eval.n_judged)
    if images is None:
        return {}, {}
    judge, record = digit_judge.load_or_train(profile, cfg.train.n_train, device, root, progress)
    found = digit_judge.coherence(images, judge)
    judged = {
        **{k: v for k, v in found.items() if k != "per_digit"},
        "judge_accuracy": record["test_accuracy"],
        "judge": digit_judge.judge_dir(profile, cfg.train.n_train, root).name,
    }
    per_digit = found["per_digit"].astype(np.float32)
    return {"judged_coherence": judged}, {"judged_coherence_per_digit": per_digit}


def _face_results(run: Run, model, data, progress) -> tuple[dict, dict]:
    """Attribute estimation, coherence (stand-in) and figure arrays of a face run (book/celeba.md).

    Writes attributes.csv / coherence.csv into the run folder; returns (the metrics they add:
    data, accuracy, coherence; the figure arrays).
    """
    from jmvae_core.measure import classifier, faces  # only for face runs

    cfg, profile, folder = run.cfg, run.profile, run.folder
    metrics = {"n_train": int(data.x_train.shape[0])}
    metrics["width"] = cfg.model.width
    # the manifest names the data folder by its full path: keep only its name in results
    manifest = {k: v for k, v in data.manifest.items() if k != "data_dir"}
    metrics["data_manifest"] = {**manifest, "data_folder": Path(data.manifest["data_dir"]).name}
    if model.p_w_z is not None:
        table = faces.attribute_estimation(model, data)
        store.write_text(folder / "attributes.csv", table.to_csv(index=False))
        metrics["accuracy"] = {
            "w_from_x_accuracy": float(table["accuracy"].mean()),
            "w_from_x_auc": float(table["auc"].mean()),
        }
    if datasets.dataset(cfg).attribute_judge and cfg.model.variant != "vae_gan":
        judge, judge_acc = classifier.load_or_train(cfg, profile, data, run.root, progress)
        table = classifier.coherence(model, judge, data, cfg.eval.eval_seed + 2)
        store.write_text(folder / "coherence.csv", table.to_csv(index=False))
        metrics["coherence"] = {
            "mean": float(table["coherence"].mean()),
            "chance": float(table["chance"].mean()),
            "all_match": float(table["all_match"].iloc[0]),
            "judge_accuracy": float(judge_acc["accuracy"].mean()),
        }
    return metrics, faces.face_arrays(model, data)


def run_one(run: Run, device=None, progress=True) -> dict:
    """Train and evaluate one run into <root>/<profile>/runs/<run_id>/; return its metrics.

    A run already marked DONE is read back, not recomputed; an interrupted one resumes.
    """
    datasets.check(run.cfg)  # the CLI's checks, before any file or lock
    if run.finished():
        return run.metrics()
    with store.run_lock(run.folder):  # a concurrent `reproduce` or `run` shares the work
        if run.state() != "done":
            train_run(run, device, progress)
        return evaluate_run(run, device, progress)


def _npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


# --------------------------------------------------------------- the same, as notebooks


def run_parameters(run: Run, device: str | None) -> dict:
    """papermill parameters of train/evaluate.ipynb: the whole config, which the notebook
    rebuilds (config.notebook_config) and checks against the run id. The results folder
    travels in the kernel's environment (environment.Environment)."""
    config = json.loads(json.dumps(run.cfg.to_dict()))  # plain literals: tuples become lists
    return {"profile": run.profile, "config": config, "device": device, "run_id": run.id}


def run_with_notebooks(run: Run, device, cwd: Path, env=None, kernels=None) -> str:
    """One run as `jmvae reproduce` makes it: notebooks/train.ipynb then evaluate.ipynb executed
    into the run's folder (each calls train_run / evaluate_run above), in kernels started with
    `env` (an environment.Environment whose results folder is the run's; None: this
    process's): kernels of their own, or the kept ones of `kernels` (execution.Kernels).
    -> 'ran' or 'cached'."""
    from jmvae_core.study.execution import execute  # papermill: only for notebook runs

    if env is not None:  # the kernels write under env's results folder: the run lives there
        if run.root is None:
            run = Run(run.cfg, run.profile, env.results_dir)
        elif Path(run.root).resolve() != Path(env.results_dir).resolve():
            raise ValueError(f"run {run.id} is under {run.root}, its kernels' results elsewhere")
    folder = run.folder
    if run.finished():  # read-only: repairs happen under the lock
        return "cached"
    with store.run_lock(folder, on_wait=_tell_waiting):  # another process may be making it
        state = run.state()
        if state == "done":
            return "cached"  # made by the process that held the lock
        params = run_parameters(run, device)
        for name in RUN_NOTEBOOKS:
            if name == "train" and state == "trained":
                continue  # trained earlier; keep the executed notebook that shows the training
            execute(name, folder / f"{name}.ipynb", params, cwd, env=env, kernels=kernels)
    return "ran"


def _tell_waiting(lock: Path) -> None:
    holder = lock.read_text().strip() if lock.exists() else "another process"
    from tqdm import tqdm  # late: the GPU script imports this module without tqdm

    tqdm.write(f"{lock.parent.name}: being made by {holder}; waiting for it", file=sys.stderr)
