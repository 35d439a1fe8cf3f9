"""Where the runs of a plan execute: threads on this machine, or tasks on a Dask cluster.

Runs that share an architecture (config.architecture: the dataset and every model field but
alpha) form one group and one task, so a worker (one GPU) receives the runs that can share
its device. Each task executes the same train/evaluate notebooks as the local executor, so
both give identical results.
`--scheduler tcp://host:8786` reaches any Dask cluster, including SLURM/PBS allocations made
with dask-jobqueue; without it a LocalCluster is started on this machine.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from jmvae_core.config import ConfigError, RunConfig, architecture
from jmvae_core.environment import Environment
from jmvae_core.store import Run
from jmvae_core.study.execution import Kernels
from jmvae_core.study.runs import run_with_notebooks

EXECUTORS = ("local", "dask")
SCHEDULER_TIMEOUT_S = 10  # seconds to wait for a --scheduler address to answer


def group_runs(cfgs: list[RunConfig]) -> list[list[RunConfig]]:
    """Runs of equal architecture together (seeds, alpha values), in plan order."""
    groups: dict[tuple, list[RunConfig]] = {}
    for cfg in cfgs:
        groups.setdefault(architecture(cfg), []).append(cfg)
    return list(groups.values())


def run_group(cfg_dicts: list[dict], profile: str, device, book: str, env: dict) -> list:
    """One task: every run of a group, one after the other -> [(run_id, 'ran'|'cached')].

    `env` (Environment.to_dict) carries the results/data folders, a trial's overrides and the
    threads to a worker process, which may live on another machine; the worker hands them to
    the kernels it starts and sets nothing in its own environment.
    """
    cfgs = [RunConfig.from_dict(d) for d in cfg_dicts]
    environment = Environment.from_dict(env)
    runs = [Run(cfg, profile, environment.results_dir) for cfg in cfgs]
    with Kernels() as kernels:  # the group's notebooks share one kernel
        return [
            (run.id, run_with_notebooks(run, device, Path(book), environment, kernels))
            for run in runs
        ]


def run_local(cfgs, profile, device, book: Path, jobs: int, on_done: Callable, env) -> None:
    """The runs on `jobs` threads of this process, each thread taking the next run of the plan
    and executing its notebooks in the thread's one kept kernel (execution.Kernels);
    `on_done(run_id, future)` is called in plan order."""
    futures = {cfg: Future() for cfg in cfgs}
    todo = queue.SimpleQueue()
    for cfg in cfgs:
        todo.put(cfg)

    def worker():
        with Kernels() as kernels:
            while True:
                try:
                    cfg = todo.get_nowait()
                except queue.Empty:
                    return
                future = futures[cfg]
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    run = Run(cfg, profile, env.results_dir)
                    future.set_result(run_with_notebooks(run, device, book, env, kernels))
                except BaseException as e:  # handed to on_done, as a pool would
                    future.set_exception(e)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, jobs))]
    for thread in threads:
        thread.start()
    try:
        for cfg, future in futures.items():
            on_done(cfg.run_id, future)
    finally:
        for future in futures.values():
            future.cancel()  # after an interrupt: no run not yet started starts
        for thread in threads:
            thread.join()


def run_dask(
    cfgs, profile, device, book: Path, on_done: Callable, env: Environment, scheduler=None,
    workers: int = 2,
) -> None:  # fmt: skip
    """Each group of runs as one task on a Dask cluster (a LocalCluster unless `scheduler`)."""
    from distributed import Client, LocalCluster, as_completed

    if env.threads is None:  # one thread per single-threaded worker's run
        env = Environment(**{**vars(env), "threads": 1})
    if scheduler:
        try:
            client, cluster = Client(scheduler, timeout=SCHEDULER_TIMEOUT_S), None
        except OSError as e:  # refused, unreachable or timed out
            raise ConfigError(
                f"cannot reach the Dask scheduler at {scheduler!r} ({e}); check --scheduler, "
                "or leave it out to start a local cluster"
            ) from e
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True)
        client = Client(cluster)
    try:
        groups = group_runs(cfgs)
        futures = {
            client.submit(
                run_group, [c.to_dict() for c in g], profile, device, str(book), env.to_dict(),
                pure=False, key=f"jmvae-{g[0].run_id}",
            ): g
            for g in groups
        }  # fmt: skip
        for future in as_completed(futures):
            for cfg in futures[future]:
                on_done(cfg.run_id, _GroupResult(future, cfg.run_id))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


class _GroupResult:
    """The outcome of one run inside a finished group task, shaped like a Future."""

    def __init__(self, future, run_id: str):
        self.future, self.run_id = future, run_id

    def result(self) -> str:
        return dict(self.future.result())[self.run_id]
