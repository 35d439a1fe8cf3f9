"""`jmvae reproduce`: every run of a profile through papermill, the result notebooks, the book.

Plan -> for each run not DONE: notebooks/train.ipynb then notebooks/evaluate.ipynb, executed
into the run's folder -> every result notebook executed in place -> jupyter-book build.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pandas as pd
from tqdm import tqdm

from . import results
from .config import ConfigError, RunConfig, plan, successors_plan
from .data import REPO_ROOT, check_mnist_sizes, fetch_mnist
from .executors import EXECUTORS, run_dask, run_local
from .faces import CELEBA_ENV, load_faces
from .train import check_device, pick_device

RUN_NOTEBOOKS = ("train", "evaluate")
RESULT_NOTEBOOKS = (
    "setup", "table1", "latent", "alpha", "generation", "claims", "successors", "reproducibility",
    "performance", "status",
)  # fmt: skip
FACE_NOTEBOOKS = ("celeba", "status")  # the face chapter reads one dataset: a parameter
EVERY_DATASET = ("reproducibility", "status")  # pages that list the runs of both halves
BOOK_SOURCES = ("_config.yml", "_toc.yml", "references.bib", "_static", "book", "notebooks")


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names its executed copy and the failing cell."""


@dataclass
class Summary:
    ran: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    book: Path | None = None
    notebooks: Path | None = None  # where the result notebooks were executed
    seconds: float = 0.0

    def __str__(self) -> str:
        lines = [
            f"ran {len(self.ran)} run(s), {len(self.cached)} cached, {len(self.failed)} failed "
            f"in {self.seconds:.0f} s"
        ]
        lines += [f"  failed: {f}" for f in self.failed]
        if self.notebooks:
            lines.append(f"notebooks: {self.notebooks}")
        if self.book:
            lines.append(f"book: {self.book / '_build' / 'html' / 'index.html'}")
        return "\n".join(lines)


def run_parameters(cfg: RunConfig, profile: str, device: str | None) -> dict:
    """papermill parameters that rebuild exactly `cfg` inside train/evaluate.ipynb."""
    m, t, e = cfg.model, cfg.train, cfg.eval
    params = {
        "profile": profile, "variant": m.variant, "alpha": m.alpha, "latent_dim": m.latent_dim,
        "seed": t.seed, "epochs": t.epochs, "warmup_epochs": t.warmup_epochs,
        "warmup_alpha": t.warmup_alpha, "n_train": t.n_train, "k": e.k, "n_prior": e.n_prior,
        "n_test": e.n_test, "device": device, "run_id": cfg.run_id,
    }  # fmt: skip
    if cfg.dataset != "mnist":
        params |= {"dataset": cfg.dataset, "width": m.width, "n_images": cfg.data.n_images}
    if t.precision != "fp32":
        params["precision"] = t.precision
    return params


def execute(
    notebook: str, output: Path, parameters: dict, cwd: Path, inputs: str | None = None
) -> None:
    """Execute notebooks/<notebook>.ipynb with papermill into `output`; explain failures."""
    import papermill as pm

    source = cwd / "notebooks" / f"{notebook}.ipynb"
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(
            str(source), str(output), parameters=parameters, kernel_name="python3",
            progress_bar=False, cwd=str(cwd), log_output=False,
        )  # fmt: skip
    except pm.PapermillExecutionError as err:
        raise NotebookFailed(
            f"{output} failed in cell {err.exec_count}: {err.ename}: {err.evalue}"
        ) from err
    relative_paths(output, cwd, inputs)


VISIBILITY_TAGS = {"remove-cell", "remove-input", "hide-input", "hide-cell", "show-input"}


def results_first(nb) -> None:
    """The book shows results, not code: the default parameters cell is removed, the injected
    one (the values this execution used) is collapsed, and every other code cell shows only
    its output, unless a cell carries its own visibility tag (e.g. `show-input`)."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.setdefault("tags", [])
        if VISIBILITY_TAGS & set(tags):
            continue
        if "parameters" in tags:
            tags.append("remove-cell")
        elif "injected-parameters" in tags:
            tags.append("hide-input")
        else:
            tags.append("remove-input")


def relative_paths(notebook: Path, base: Path, inputs: str | None = None) -> None:
    """Store papermill's input/output paths relative to `base` (no machine paths in results),
    and, for result notebooks, the key of the inputs they were executed on; tag the cells for
    a results-first page (results_first)."""
    nb = nbformat.read(notebook, as_version=4)
    results_first(nb)
    meta = nb.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        if meta.get(key) and os.path.isabs(meta[key]):
            meta[key] = os.path.relpath(meta[key], base)
    if inputs is not None:
        nb.metadata["jmvae"] = {"inputs": inputs}
    results.write_text(notebook, nbformat.writes(nb))


def _run_one(cfg: RunConfig, profile: str, device, cwd: Path) -> str:
    folder = results.run_dir(profile, cfg.run_id)
    if results.finished(folder):  # read-only: repairs happen under the lock
        return "cached"
    with results.run_lock(folder, on_wait=_tell_waiting):  # another process may be making it
        state = results.check_run(folder)
        if state == "done":
            return "cached"  # made by the process that held the lock
        params = run_parameters(cfg, profile, device)
        for name in RUN_NOTEBOOKS:
            if name == "train" and state == "trained":
                continue  # trained earlier; keep the executed notebook that shows the training
            execute(name, folder / f"{name}.ipynb", params, cwd)
    return "ran"


def _tell_waiting(lock: Path) -> None:
    holder = lock.read_text().strip() if lock.exists() else "another process"
    tqdm.write(f"{lock.parent.name}: being made by {holder}; waiting for it", file=sys.stderr)


def inputs_key(notebook: Path, profile: str, dataset: str = "mnist") -> str:
    """Hash of what a result notebook reads: its code cells, the profile and dataset, every
    run's metrics (of every dataset for the EVERY_DATASET pages)."""
    nb = nbformat.read(notebook, as_version=4)
    h = hashlib.sha256(f"{profile}/{dataset}".encode())
    for cell in nb.cells:
        if "injected-parameters" not in cell.metadata.get("tags", []):
            h.update(cell.source.encode())
    for metrics in sorted((results.results_root() / profile / "runs").glob("*/metrics.json")):
        raw = metrics.read_bytes()
        every = notebook.stem in EVERY_DATASET
        if results.is_done(metrics.parent) and (every or json.loads(raw).get("dataset") == dataset):
            h.update(raw)
    return h.hexdigest()


def _stored_key(notebook: Path) -> str | None:
    meta = nbformat.read(notebook, as_version=4).metadata
    ran_ok = "papermill" in meta and not meta["papermill"].get("exception")
    return meta.get("jmvae", {}).get("inputs") if ran_ok else None


def _prepare_book_dir(book_dir: Path) -> Path:
    book_dir = book_dir.resolve()
    if book_dir != REPO_ROOT.resolve():
        for name in BOOK_SOURCES:
            src, dst = REPO_ROOT / name, book_dir / name
            if src.is_dir():
                shutil.copytree(src, dst, dirs_exist_ok=True)
            else:
                book_dir.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
    return book_dir


def build_book(book_dir: Path) -> None:
    """jupyter-book build <dir> -W -n --keep-going (warnings are errors)."""
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(book_dir)]
    done = subprocess.run([*cmd, "-W", "-n", "--keep-going"], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(
            f"jupyter-book build failed:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"
        )


def default_jobs(device: str | None) -> int:
    """Runs at once: one per core on the CPU (1.5x the throughput of one 2-thread run on 2
    cores, measured), one on an accelerator."""
    return (os.cpu_count() or 1) if pick_device(device).type == "cpu" else 1


def _restoring_environ(fn):
    """`fn` with os.environ as it was afterwards: the variables a call sets for its notebook
    kernels (results and CelebA folders, plan overrides, threads) do not outlive it."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        saved = dict(os.environ)
        try:
            return fn(*args, **kwargs)
        finally:
            os.environ.clear()
            os.environ.update(saved)

    return wrapper


@_restoring_environ
def reproduce(
    profile: str = "quick",
    device: str | None = None,
    jobs: int | None = None,
    results_dir: Path | None = None,
    book_dir: Path | None = None,
    build: bool = True,
    overrides: dict | None = None,
    progress: bool = True,
    dataset: str = "mnist",
    data_dir: Path | None = None,
    executor: str = "local",
    scheduler: str | None = None,
) -> Summary:
    """Run the whole study for a profile and dataset; skip DONE runs; return what ran, was
    cached, failed. `data_dir` is the CelebA folder (dataset="celeba"). `executor="dask"` sends
    groups of runs to a Dask cluster: `scheduler` (an address), else a LocalCluster of `jobs`
    single-threaded workers."""
    start = time.perf_counter()
    if executor not in EXECUTORS:
        raise ConfigError(f"executor={executor!r} is unknown; allowed: {', '.join(EXECUTORS)}")
    if overrides:  # a trial: its own results and book, notebooks told the overrides
        tag = "-".join(f"{k}{v}" for k, v in sorted(overrides.items()))
        trial = results.results_root() / "trials" / f"{dataset}-{tag}"
        results_dir = results_dir or trial / "results"
        book_dir = book_dir or trial / "book"
        os.environ[results.PLAN_ENV] = json.dumps(overrides)
    else:
        os.environ.pop(results.PLAN_ENV, None)
    if results_dir is not None:
        os.environ[results.RESULTS_ENV] = str(Path(results_dir).resolve())  # kernels inherit it
    if data_dir is not None:
        os.environ[CELEBA_ENV] = str(Path(data_dir).resolve())  # before plan(): w_dim
    # parameter errors surface here, before any work: settings, data sizes, the device
    cfgs = plan(profile, dataset, **(overrides or {}))
    if dataset == "mnist":  # JMVAE's successors, compared in their own chapter
        cfgs += successors_plan(profile, **(overrides or {}))
    for cfg in cfgs:
        check_mnist_sizes(cfg)
    check_device(device)
    log = lambda msg: tqdm.write(msg, file=sys.stderr) if progress else None  # noqa: E731
    if dataset == "mnist":
        fetch_mnist(log=log)
        notebooks = RESULT_NOTEBOOKS
    else:
        todo = [c for c in cfgs if results.check_run(results.run_dir(profile, c.run_id)) != "done"]
        if todo:  # finished runs need neither the images nor the judge
            prepare_faces(todo[0], profile, progress)
        notebooks = FACE_NOTEBOOKS
    book = _prepare_book_dir(Path(book_dir) if book_dir else REPO_ROOT)
    summary = Summary()
    steps = len(cfgs) + len(notebooks) + int(build)
    # closed on the way out, an error included: a message then starts on a line of its own
    with tqdm(total=steps, desc=f"reproduce {profile}", disable=not progress) as bar:
        jobs = jobs or default_jobs(device)
        if profile == "paper" and pick_device(device).type == "cpu" and progress:
            tqdm.write(
                "note: the paper profile (500 epochs x 39 runs, k = 1000) is meant for a GPU; "
                "on a CPU it takes days",
                file=sys.stderr,
            )
        if jobs > 1:
            # small matmuls scale poorly across threads: one thread per run is the better use
            os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))

        def on_done(run_id, future):
            try:
                getattr(summary, future.result()).append(run_id)
            except NotebookFailed as err:
                summary.failed.append(str(err))
            bar.update()

        if executor == "dask":
            run_dask(cfgs, profile, device, book, on_done, scheduler, workers=max(1, jobs))
        else:
            run_local(cfgs, profile, device, book, jobs, on_done)
        if summary.failed:
            summary.seconds = time.perf_counter() - start
            raise NotebookFailed(str(summary))
        for name in notebooks:
            bar.set_postfix_str(name)
            path = book / "notebooks" / f"{name}.ipynb"
            key = inputs_key(path, profile, dataset)
            params = {"profile": profile} | ({"dataset": dataset} if name == "celeba" else {})
            if name == "status" or _stored_key(path) != key:
                execute(name, path, params, book, inputs=key)
            bar.update()
        summary.notebooks = book / "notebooks"
        if build:
            bar.set_postfix_str("jupyter-book build")
            build_book(book)
            summary.book = book
            bar.update()
    summary.seconds = time.perf_counter() - start
    return summary


def prepare_faces(cfg: RunConfig, profile: str, progress: bool = True) -> None:
    """Once, before the runs start in parallel: generate the stand-in (or check and crop the
    CelebA files) into the shared cache, and train the stand-in's attribute judge."""
    from .classifier import load_or_train

    data = load_faces(cfg, progress=progress)
    if cfg.dataset == "standin":
        load_or_train(cfg, profile, data, progress=progress)


def notebook_status(profile: str, book_dir: Path = Path(".")):
    """Execution time of every executed notebook of a profile (papermill metadata) as a table."""
    base = results.results_root() / profile / "runs"
    paths = [book_dir / "notebooks" / f"{n}.ipynb" for n in RESULT_NOTEBOOKS if n != "status"]
    paths += sorted(base.glob("*/*.ipynb"))
    rows = []
    for path in paths:
        if not path.exists():
            continue
        meta = nbformat.read(path, as_version=4).metadata.get("papermill", {})
        where = path.parent.name if path.parent.parent == base else "notebooks"
        rows.append({
            "notebook": f"{where}/{path.name}",
            "profile": meta.get("parameters", {}).get("profile"),
            "seconds": round(float(meta.get("duration") or 0.0), 1),
            "finished": (meta.get("end_time") or "")[:19],
            "status": meta.get("exception") and "failed" or ("ok" if meta else "not executed"),
        })  # fmt: skip
    return pd.DataFrame(rows)
