"""What the reproducibility page shows: provenance of every run, evaluation sets, checksums."""

from __future__ import annotations

import pandas as pd

from jmvae_core.data.mnist import MNIST_MD5
from jmvae_core.pages import results

PROVENANCE_COLUMNS = [
    "dataset",
    "variant",
    "epochs",
    "device_name",
    "torch",
    "python",
    "git_commit",
    "train_time_s",
    "eval_time_s",
]


def load_face_runs(profile: str, dataset: str = "standin") -> list[dict]:
    """The finished face runs of a profile, or [] where the face plan is not (all) finished:
    an MNIST-only reproduction still renders its provenance page."""
    try:
        return results.load_runs(profile, dataset=dataset)
    except FileNotFoundError:
        return []


def _all_runs(mnist_runs: list[dict], face_runs: list[dict]) -> list[dict]:
    return [{"dataset": "mnist", **r} for r in mnist_runs] + list(face_runs)


def _provenance_rows(mnist_runs: list[dict], face_runs: list[dict]) -> pd.DataFrame:
    columns = ["run_id", *PROVENANCE_COLUMNS]
    rows = [{c: r.get(c) for c in columns} for r in _all_runs(mnist_runs, face_runs)]
    table = pd.DataFrame(rows, columns=columns).set_index("run_id")
    table.index.name = "run id"
    return table.rename(columns={"train_time_s": "train (s)", "eval_time_s": "evaluation (s)"})


SHARED_CANDIDATES = ("device_name", "torch", "python")


def provenance_table(mnist_runs: list[dict], face_runs: list[dict]) -> pd.DataFrame:
    """What every run recorded about itself, indexed by run id (MNIST runs first, then the
    face runs): dataset, model, epochs, the code commit, training and evaluation seconds, and
    the device, torch and Python versions where they differ between runs
    (`provenance_shared` names them where all runs share them)."""
    table = _provenance_rows(mnist_runs, face_runs)
    shared = [c for c in SHARED_CANDIDATES if table[c].nunique(dropna=False) <= 1]
    return table.drop(columns=shared)


def provenance_shared(mnist_runs: list[dict], face_runs: list[dict]) -> str:
    """The device, torch and Python versions that every run recorded alike, in words."""
    table = _provenance_rows(mnist_runs, face_runs)
    names = {"device_name": "device", "torch": "torch", "python": "Python"}
    shared = [
        f"{names[c]} {table[c].iloc[0]}"
        for c in SHARED_CANDIDATES
        if len(table) and table[c].nunique(dropna=False) == 1
    ]
    return ", ".join(shared) if shared else "none"


def eval_sets_table(mnist_runs: list[dict], face_runs: list[dict]) -> pd.DataFrame:
    """The test set(s) the runs evaluated on: one row per dataset and test-set hash, with the
    number of runs that used it."""
    seed = "binarisation seed"
    rows = pd.DataFrame(
        [
            {
                "dataset": r["dataset"],
                "test set SHA-256": r.get("test_hash"),
                seed: "—" if r.get("test_binarize_seed") is None else r["test_binarize_seed"],
                "run_id": r["run_id"],
            }
            for r in _all_runs(mnist_runs, face_runs)
        ],
        dtype=object,
    )
    if rows.empty:
        return pd.DataFrame(columns=["test set SHA-256", seed, "runs"])
    keys = ["dataset", "test set SHA-256", seed]
    table = rows.groupby(keys, sort=False)["run_id"].count()
    return table.rename("runs").reset_index().set_index("dataset")


def checksums_table(face_runs: list[dict]) -> pd.DataFrame:
    """The data files' checksums, indexed by data (with the algorithm) and file: MNIST's MD5
    (checked on every load) and the SHA-256 of the face images and attribute list that each
    face run's data manifest recorded (its data folder names the stand-in's size and seed)."""
    rows = [("MNIST (MD5)", name, md5) for name, md5 in MNIST_MD5.items()]
    for run in face_runs:
        manifest = run.get("data_manifest") or {}
        data = f"{manifest.get('data_folder') or run.get('dataset')} (SHA-256)"
        rows += [(data, name, digest) for name, digest in (manifest.get("sha256") or {}).items()]
    table = pd.DataFrame(rows, columns=["data", "file", "checksum"])
    return table.drop_duplicates().set_index(["data", "file"])


def provenance_facts(mnist_runs: list[dict], face_runs: list[dict]) -> dict:
    """Key numbers of the provenance page: runs per half, the commits and devices recorded,
    and whether each dataset's runs share one test set."""
    runs = _all_runs(mnist_runs, face_runs)
    commits = sorted({str(r.get("git_commit")) for r in runs})
    devices = sorted({str(r.get("device_name")) for r in runs})
    shared = {
        d: len({r.get("test_hash") for r in runs if r["dataset"] == d}) == 1
        for d in {r["dataset"] for r in runs}
    }
    return {
        "n_mnist": len(mnist_runs),
        "n_faces": len(face_runs),
        "commits": ", ".join(commits),
        "n_commits": len(commits),
        "devices": ", ".join(devices),
        "one_test_set": "yes" if shared and all(shared.values()) else "no",
    }
