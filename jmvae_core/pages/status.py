"""What the status page shows: every executed notebook of a profile with its measured time."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pandas as pd

from jmvae_core import config, store

PARTS = ("MNIST runs", "face runs", "result notebooks")


def _run_dataset(folder: Path, profile: str) -> str:
    """A run's dataset: its config.json, else its metrics.json, else its id in a face plan."""
    for name in ("config.json", "metrics.json"):
        try:
            return store.read_json(folder / name).get("dataset", "mnist")
        except (OSError, ValueError):
            continue
    for dataset in config.IMAGE_DATASETS:
        if folder.name in {c.run_id for c in config.plan(profile, dataset)}:
            return dataset
    return "mnist"


def _papermill_row(path: Path) -> dict:
    import nbformat

    meta = nbformat.read(path, as_version=4).metadata.get("papermill", {})
    return {
        "notebook": f"notebooks/{path.name}",
        "profile": meta.get("parameters", {}).get("profile"),
        "seconds": round(float(meta.get("duration") or 0.0), 1),
        "finished": (meta.get("end_time") or "")[:19],
        "status": meta.get("exception") and "failed" or ("ok" if meta else "not executed"),
    }


def status_table(profile: str, book_dir: Path = Path(".")) -> pd.DataFrame:
    """Every executed notebook of a profile with papermill's measured time, indexed by
    notebook: `pipeline.notebook_status` (result notebooks, each run's train and evaluate),
    plus the face chapter's notebook where it lacks it; each labelled with its part (MNIST
    runs, face runs, result notebooks) and dataset (a run's from its config.json)."""

    table = notebook_status(profile, book_dir)
    columns = ["notebook", "profile", "seconds", "finished", "status"]
    table = table if not table.empty else pd.DataFrame(columns=columns)
    face_nb = Path(book_dir) / "notebooks" / "celeba.ipynb"
    if face_nb.exists() and "notebooks/celeba.ipynb" not in set(table["notebook"]):
        table = pd.concat([table, pd.DataFrame([_papermill_row(face_nb)])], ignore_index=True)
    base = store.runs_dir(profile)
    where = table["notebook"].str.split("/").str[0]
    datasets = {w: _run_dataset(base / w, profile) for w in set(where) if w != "notebooks"}
    table["dataset"] = [datasets.get(w, "—") for w in where]
    table["part"] = [
        "result notebooks"
        if w == "notebooks"
        else "MNIST runs"
        if config.DATASETS.get(datasets[w], config.DATASETS["mnist"]).family == "mnist"
        else "face runs"
        for w in where
    ]
    table["seconds"] = table["seconds"].astype(float)
    table["finished"] = table["finished"].astype(str).str.replace("T", " ", regex=False)
    table["order"] = table["part"].map(PARTS.index)
    table = table.sort_values(["order", "notebook"], kind="stable")
    return table.set_index("notebook")[["part", "dataset", "seconds", "finished", "status"]]


def status_minutes(status: pd.DataFrame) -> pd.DataFrame:
    """Notebooks and measured minutes per part, and in all."""
    grouped = status.groupby("part")["seconds"].agg(["count", "sum"]).reindex(list(PARTS))
    grouped = grouped.fillna(0)
    grouped.loc["total"] = [len(status), float(status["seconds"].sum())]
    table = pd.DataFrame(
        {"notebooks": grouped["count"].astype(int), "minutes": (grouped["sum"] / 60).round(1)}
    )
    table.index.name = "part"
    return table


def status_facts(status: pd.DataFrame) -> dict:
    """Measured minutes of the MNIST runs, the face runs, the result notebooks and in all
    (rounded to 0.1 min), for other pages to cite."""
    minutes = status_minutes(status)["minutes"]
    return {
        "mnist": float(minutes["MNIST runs"]),
        "faces": float(minutes["face runs"]),
        "notebooks": float(minutes["result notebooks"]),
        "total": float(minutes["total"]),
    }


RESULT_NOTEBOOKS = (
    "setup", "table1", "latent", "alpha", "generation", "claims", "successors", "reproducibility",
    "performance", "status",
)  # fmt: skip


FACE_NOTEBOOKS = ("celeba", "status")  # the face chapter reads one dataset: a parameter


def _execution(meta: dict) -> dict:
    """What the status page reads from a notebook's papermill metadata."""
    keys = ("duration", "end_time", "exception")
    return {k: meta.get(k) for k in keys} | {"profile": meta.get("parameters", {}).get("profile")}


def notebook_status(profile: str, book_dir: Path = Path(".")):
    """Execution time of every executed notebook of a profile (papermill metadata) as a table."""
    base = store.runs_dir(profile)
    rows = []
    for path in status_sources(profile, book_dir):
        meta = nbformat.read(path, as_version=4).metadata.get("papermill", {})
        plans = base.parent / "plans"
        where = path.parent.name if path.parent.parent in (base, plans) else "notebooks"
        run = _execution(meta)
        rows.append({
            "notebook": f"{where}/{path.name}",
            "profile": run["profile"],
            "seconds": round(float(run["duration"] or 0.0), 1),
            "finished": (run["end_time"] or "")[:19],
            "status": run["exception"] and "failed" or ("ok" if meta else "not executed"),
        })  # fmt: skip
    return pd.DataFrame(rows)


def status_sources(profile: str, book_dir: Path = Path("."), root=None) -> list[Path]:
    """The executed notebooks the status page reports: the result notebooks of `book_dir` (the
    face chapter's included), every run's train/evaluate notebook of the profile under `root`
    and the train_plan notebook of every plan trained together."""
    base = store.runs_dir(profile, root)
    pages = dict.fromkeys(RESULT_NOTEBOOKS + FACE_NOTEBOOKS)
    paths = [book_dir / "notebooks" / f"{n}.ipynb" for n in pages if n != "status"]
    paths += sorted(base.glob("*/*.ipynb")) + sorted((base.parent / "plans").glob("*/*.ipynb"))
    return [p for p in paths if p.exists()]
