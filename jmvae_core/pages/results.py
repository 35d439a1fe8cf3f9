"""The reading side of the results: finished runs, their arrays, histories and
per-image estimates, and the committed benchmarks. Read-only: a damaged run is skipped, never
repaired (the writing side, jmvae_core.store, repairs when it makes runs)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from jmvae_core.config import DATASETS, plan, successors_plan
from jmvae_core.environment import REPO_ROOT, plan_overrides
from jmvae_core.store import DONE, PER_IMAGE, PROBE, metrics_problem, read_json, runs_dir


def _readable(folder: Path) -> bool:
    """Whether a run folder holds a finished run: DONE over a readable metrics.json of it.
    A damaged one is named on stderr, and left as it is."""
    if not (folder / DONE).exists():
        return False
    problem = metrics_problem(folder / "metrics.json", folder.name)
    if problem is not None:
        print(f"jmvae: {problem}: skipped, not read as a result", file=sys.stderr)
    return problem is None


def load_runs(
    profile: str, root: Path | None = None, planned_only: bool = True, dataset: str = "mnist",
    longer: bool = False, successors: bool = False, complete: bool = True,
) -> list[dict]:  # fmt: skip
    """metrics.json of the finished (DONE) runs of a profile, with its folder under 'path'.

    By default only the runs of the profile's plan are returned, so an extra run made by hand
    (e.g. `jmvae run --epochs 40`) never slips into a table; the plan's longer-trained runs
    (config.CONVERGENCE_RUNS) only with `longer`, so that tables over seeds never mix them in;
    JMVAE's successors (config.successors_plan) only with `successors`. Unfinished folders are
    skipped: a crashed run is never read as a result. A DONE over a damaged metrics.json is
    named on stderr and skipped, never removed (this side only reads; the run is made again by
    `jmvae reproduce`, whose writing side repairs it). A missing run of the plan raises,
    unless `complete` is False: then the finished ones are returned, perhaps none (the paper
    profile, whose runs are made a few at a time).
    """
    base = runs_dir(profile, root)
    overrides = plan_overrides()  # a trial's notebooks look for the trial's runs
    wanted = None
    if planned_only:
        cfgs = plan(profile, dataset, longer, **overrides)
        if successors and DATASETS[dataset].family == "mnist":
            cfgs += successors_plan(profile, **overrides)
        wanted = {cfg.run_id for cfg in cfgs}
    runs = []
    for folder in sorted(base.glob("*/")):
        if (wanted is None or folder.name in wanted) and _readable(folder):
            metrics = read_json(folder / "metrics.json")
            if metrics.get("dataset", "mnist") == dataset:
                runs.append({**metrics, **_probe(folder), "path": str(folder)})
    missing = sorted(wanted - {r["run_id"] for r in runs}) if wanted is not None else []
    if complete and (missing or not runs):
        raise FileNotFoundError(
            f"{len(missing) or 'no'} run(s) of the {profile} profile are not finished in {base} "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); "
            f"produce them with `jmvae reproduce --profile {profile}"
            + ("" if dataset == "mnist" else f" --dataset {dataset}")
            + "".join(f" --{k.replace('_', '-')} {v}" for k, v in overrides.items())
            + "`"
        )
    return runs


def _probe(folder: Path) -> dict:
    """{"latent_probe": record or None, "probe_commit": ...} from probe.json; {} if absent."""
    if not (folder / PROBE).exists():
        return {}
    record = read_json(folder / PROBE)
    return {"latent_probe": record["latent_probe"], "probe_commit": record.get("git_commit")}


def load_arrays(run: dict) -> dict:
    """The figure arrays (arrays.npz) of a run returned by load_runs."""
    with np.load(Path(run["path"]) / "arrays.npz") as npz:
        return dict(npz)


def load_history(run: dict):
    """The per-epoch training history (history.csv) of a run returned by load_runs."""
    import pandas as pd

    return pd.read_csv(Path(run["path"]) / "history.csv")


def load_per_image(run: dict) -> dict | None:
    """The per-image estimates of a run returned by load_runs, {estimator: (N,) float64}, or
    None for a run made before they were stored."""
    path = Path(run["path"]) / PER_IMAGE
    if not path.exists():
        return None
    with np.load(path) as npz:
        return {k: npz[k].astype(np.float64) for k in npz.files}


def load_benchmark(name: str) -> tuple[dict, dict]:
    """benchmarks/results/<name>.json and its entries as {entry name: value}."""
    data = read_json(REPO_ROOT / "benchmarks" / "results" / f"{name}.json")
    return data, {e["name"]: e["value"] for e in data.get("entries", [])}
