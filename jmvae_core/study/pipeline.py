"""`jmvae reproduce`: every run of a profile through papermill, the result notebooks, the book.

Plan -> with `batched` (the default on CUDA), the paper's MNIST runs not yet trained trained
together by notebooks/train_plan.ipynb (plan_training) -> for each run not DONE:
notebooks/train.ipynb (unless trained) then notebooks/evaluate.ipynb, executed into the run's
folder (runs.run_with_notebooks, by an executor) -> every result notebook
executed in place (execution.execute) -> jupyter-book build. The folders and settings travel
as one environment.Environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from tqdm import tqdm

from jmvae_core import data as datasets
from jmvae_core import environment, store
from jmvae_core.config import DATASETS, ConfigError, RunConfig, plan, select_runs, successors_plan
from jmvae_core.environment import REPO_ROOT, THREADS_ENV, Environment
from jmvae_core.pages.status import FACE_NOTEBOOKS, RESULT_NOTEBOOKS, _execution, status_sources
from jmvae_core.study import plan_training
from jmvae_core.study.execution import Kernels, NotebookFailed, execute
from jmvae_core.study.executors import EXECUTORS, run_dask, run_local
from jmvae_core.training.fit import check_device, pick_device

# pages that read the paper protocol's runs beside their profile's
PAPER_PAGES = ("table1", "claims", "alpha", "generation", "latent")
EVERY_DATASET = ("reproducibility", "status")  # pages that list the runs of both halves
BOOK_SOURCES = ("_config.yml", "_toc.yml", "references.bib", "_static", "book", "notebooks")


@dataclass
class Summary:
    ran: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    book: Path | None = None
    notebooks: Path | None = None  # where the result notebooks were executed
    seconds: float = 0.0
    waiting: int = 0  # runs of the plan outside a run filter still unfinished: no pages yet
    plan: Path | None = None  # the executed train_plan notebook, when runs trained together

    def __str__(self) -> str:
        lines = [
            f"ran {len(self.ran)} run(s), {len(self.cached)} cached, {len(self.failed)} failed "
            f"in {self.seconds:.0f} s"
        ]
        lines += [f"  failed: {f}" for f in self.failed]
        if self.plan:
            lines.append(f"trained together: {self.plan}")
        if self.waiting:
            lines.append(
                f"result notebooks and book not made: {self.waiting} run(s) of the plan "
                "outside the run filter are unfinished"
            )
        if self.notebooks:
            lines.append(f"notebooks: {self.notebooks}")
        if self.book:
            lines.append(f"book: {self.book / '_build' / 'html' / 'index.html'}")
        return "\n".join(lines)


def inputs_key(notebook: Path, profile: str, dataset: str = "mnist", root=None) -> str:
    """Hash of what a result notebook reads: its code cells, the profile and dataset, every
    run's metrics and latent probe (of every dataset for the EVERY_DATASET pages) under `root`
    (default: environment.results_root()), and the paper profile's runs for the PAPER_PAGES."""
    nb = nbformat.read(notebook, as_version=4)
    h = hashlib.sha256(f"{profile}/{dataset}".encode())
    for cell in nb.cells:
        if "injected-parameters" not in cell.metadata.get("tags", []):
            h.update(cell.source.encode())
    root = Path(root if root is not None else environment.results_root())
    profiles = [profile] + (
        ["paper"] if notebook.stem in PAPER_PAGES and profile != "paper" else []
    )
    found = [m for p in profiles for m in sorted((root / p / "runs").glob("*/metrics.json"))]
    for metrics in found:
        raw = metrics.read_bytes()
        every = notebook.stem in EVERY_DATASET
        if store.is_done(metrics.parent) and (every or json.loads(raw).get("dataset") == dataset):
            h.update(raw)
            probe = metrics.parent / store.PROBE
            if probe.exists():
                h.update(probe.read_bytes())
    if notebook.stem == "status":  # it reports how and when the other notebooks ran
        for path in status_sources(profile, notebook.parent.parent, root):
            meta = nbformat.read(path, as_version=4).metadata.get("papermill", {})
            h.update(json.dumps([str(path.name), _execution(meta)], sort_keys=True).encode())
    return h.hexdigest()


def _stored_key(notebook: Path) -> str | None:
    meta = nbformat.read(notebook, as_version=4).metadata
    ran_ok = "papermill" in meta and not meta["papermill"].get("exception")
    return meta.get("jmvae", {}).get("inputs") if ran_ok else None


def _prepare_book_dir(book_dir: Path) -> Path:
    """A book folder outside the repository gets the repository's book sources, each file
    replaced atomically, under the book's lock (a concurrent call may be executing its pages);
    an executed notebook whose cells are the repository's is kept, so a second call re-executes
    only what changed."""
    book_dir = book_dir.resolve()
    if book_dir == REPO_ROOT.resolve():
        return book_dir
    with store.run_lock(book_dir / "_build"):
        for name in BOOK_SOURCES:
            src = REPO_ROOT / name
            files = sorted(f for f in src.rglob("*") if f.is_file()) if src.is_dir() else [src]
            for f in files:
                if any(part.startswith((".", "tmp-", "LOCK")) for part in f.parts[-2:]):
                    continue  # checkpoints, a live process's temporary files
                dst = book_dir / f.relative_to(REPO_ROOT)
                if f.suffix == ".ipynb" and dst.exists() and _cells(dst) == _cells(f):
                    continue
                store.atomic_write_bytes(dst, f.read_bytes())
    return book_dir


def _cells(notebook: Path) -> list[tuple[str, str]]:
    """A notebook's text and code, without the parameters papermill injected."""
    nb = nbformat.read(notebook, as_version=4)
    return [
        (c.cell_type, c.source) for c in nb.cells
        if "injected-parameters" not in c.metadata.get("tags", [])
    ]  # fmt: skip


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
    only: dict | None = None,
    batched: bool | None = None,
) -> Summary:
    """Run the whole study for a profile and dataset; skip DONE runs; return what ran, was
    cached, failed. `data_dir` is the CelebA folder (dataset="celeba"). `executor="dask"` sends
    groups of runs to a Dask cluster: `scheduler` (an address), else a LocalCluster of `jobs`
    single-threaded workers. The folders, a trial's overrides and the threads per run form one
    environment.Environment, passed to the executor and to every notebook kernel; this process's
    os.environ is left as it was. `only` (config.select_runs) trains a part of the plan; the
    result notebooks and the book follow once every run of the plan is finished. `batched`
    (None: on CUDA) trains the runs plan_training can stack in one plan notebook first."""
    start = time.perf_counter()
    if executor not in EXECUTORS:
        raise ConfigError(f"executor={executor!r} is unknown; allowed: {', '.join(EXECUTORS)}")
    if overrides:  # a trial: its own results and book, notebooks told the overrides
        tag = "-".join(f"{k}{v}" for k, v in sorted(overrides.items()))
        trial = environment.results_root() / "trials" / f"{dataset}-{tag}"
        results_dir = results_dir or trial / "results"
        book_dir = book_dir or trial / "book"
    env = Environment.resolve(results_dir, None, data_dir, overrides)
    # parameter errors surface here, before any work: settings, data sizes, the device
    cfgs = plan(profile, dataset, celeba_root=env.celeba_dir, **env.overrides)
    digits = DATASETS[dataset].family == "mnist"
    if digits:  # JMVAE's successors, compared in their own chapter
        cfgs += successors_plan(profile, **env.overrides)
    whole, cfgs = cfgs, select_runs(cfgs, only)
    for cfg in cfgs:
        datasets.check(cfg)
    check_device(device)
    log = lambda msg: tqdm.write(msg, file=sys.stderr) if progress else None  # noqa: E731
    todo = [c for c in cfgs if store.Run(c, profile, env.results_dir).state() != "done"]
    if digits or todo:  # finished face runs need neither the images nor the judge
        prepare_data(todo[0] if todo else cfgs[0], profile, env, progress, log)
    notebooks = RESULT_NOTEBOOKS if digits else FACE_NOTEBOOKS
    book = _prepare_book_dir(Path(book_dir) if book_dir else REPO_ROOT)
    summary = Summary()
    if batched is None:
        batched = pick_device(device).type == "cuda"
    together = plan_training.to_train([store.Run(c, profile, env.results_dir) for c in todo])
    together = together if batched else []
    steps = len(cfgs) + len(notebooks) + int(build) + int(bool(together))
    # closed on the way out, an error included: a message then starts on a line of its own
    with tqdm(total=steps, desc=f"reproduce {profile}", disable=not progress) as bar:
        jobs = jobs or default_jobs(device)
        if profile == "paper" and pick_device(device).type == "cpu" and progress:
            tqdm.write(
                "note: the paper profile (500 epochs x 39 runs, k = 1000) is meant for a GPU; "
                "on a CPU it takes days",
                file=sys.stderr,
            )
        if jobs > 1 and THREADS_ENV not in os.environ:
            # small matmuls scale poorly across threads: one thread per run is the better use
            env = Environment(**{**vars(env), "threads": max(1, (os.cpu_count() or 1) // jobs)})

        def on_done(run_id, future):
            try:
                getattr(summary, future.result()).append(run_id)
            except NotebookFailed as err:
                summary.failed.append(str(err))
            bar.update()

        if together:
            bar.set_postfix_str(f"{plan_training.NOTEBOOK} ({len(together)} runs)")
            summary.plan = plan_training.run_plan_notebook(together, device, book, env)
            bar.update()
        if executor == "dask":
            run_dask(cfgs, profile, device, book, on_done, env, scheduler, workers=max(1, jobs))
        else:
            run_local(cfgs, profile, device, book, jobs, on_done, env)
        if summary.failed:
            summary.seconds = time.perf_counter() - start
            raise NotebookFailed(str(summary))
        summary.waiting = sum(not store.Run(c, profile, env.results_dir).finished() for c in whole)
        if not summary.waiting:  # the pages read the whole plan
            summary.notebooks, summary.book = _make_pages(
                book, notebooks, build, profile, dataset, env, bar, log
            )
    summary.seconds = time.perf_counter() - start
    return summary


def _make_pages(book: Path, notebooks, build, profile, dataset, env, bar, log):
    """Execute the result notebooks whose inputs changed, then build the book: under a lock on
    the book folder, so that concurrent calls share the work (the second finds every notebook
    up to date) and neither reads a notebook the other is writing. -> (the notebooks' folder,
    the book's folder or None when not built)."""
    waiting = lambda _: log(f"{book}: another process is making its pages; waiting for it")  # noqa: E731
    with store.run_lock(book / "_build", on_wait=waiting), Kernels() as kernels:
        for name in notebooks:
            bar.set_postfix_str(name)
            path = book / "notebooks" / f"{name}.ipynb"
            key = inputs_key(path, profile, dataset, env.results_dir)
            params = {"profile": profile} | ({"dataset": dataset} if name == "celeba" else {})
            if _stored_key(path) != key:  # nothing to redo: nothing rewritten
                execute(name, path, params, book, inputs=key, env=env, kernels=kernels)
            bar.update()
        if not build:
            return book / "notebooks", None
        bar.set_postfix_str("jupyter-book build")
        build_book(book)
        bar.update()
        return book / "notebooks", book


def prepare_data(
    cfg: RunConfig, profile: str, env: Environment, progress: bool = True, log=print
) -> None:
    """Once, before the runs start in parallel: the dataset's own preparation (MNIST fetched and
    verified; the stand-in generated, or the CelebA files checked and cropped, into the shared
    cache), then the attribute judge where the dataset is scored by one."""
    from jmvae_core.measure.classifier import load_or_train

    found = datasets.dataset(cfg)
    data = found.prepare(cfg, env.data_dir, env.celeba_dir, progress, log)
    if found.attribute_judge:
        if data is None:
            data = found.load(cfg, "cpu", progress, env.data_dir, env.celeba_dir)
        load_or_train(cfg, profile, data, root=env.results_dir, progress=progress)
