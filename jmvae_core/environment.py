"""Where a study reads and writes, as one value that is passed around, never set in os.environ.

`Environment` holds the results, data and CelebA folders, the plan overrides of a trial and the
threads per run. `jmvae reproduce` builds one and hands it to each notebook kernel it starts as
that kernel's environment variables (`kernel_variables`), to the executors and to every function
that reads a folder; it changes nothing in its own process. Inside a kernel (train/evaluate and
the result notebooks) those variables are the configuration, read by the functions below, which
default to the repository's folders. This module imports nothing from the package.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_ENV = "JMVAE_DATA_DIR"
CELEBA_ENV = "JMVAE_CELEBA_DIR"
RESULTS_ENV = "JMVAE_RESULTS_DIR"
COMMIT_ENV = "JMVAE_GIT_COMMIT"  # the commit of a copy without .git (the GPU script sets it)
PLAN_ENV = "JMVAE_PLAN_OVERRIDES"  # JSON: the overrides of a trial (`reproduce --epochs N`)
THREADS_ENV = "OMP_NUM_THREADS"


def data_dir() -> Path:
    """The data directory: $JMVAE_DATA_DIR, else `data/` in the repository."""
    return Path(os.environ.get(DATA_ENV, REPO_ROOT / "data"))


def celeba_dir() -> Path:
    """The CelebA folder: $JMVAE_CELEBA_DIR (set by `--data-dir`), else <data dir>/celeba."""
    return Path(os.environ.get(CELEBA_ENV, data_dir() / "celeba"))


def results_root() -> Path:
    """$JMVAE_RESULTS_DIR, else `results/` in the repository."""
    return Path(os.environ.get(RESULTS_ENV, REPO_ROOT / "results"))


def plan_overrides() -> dict:
    """The plan overrides a trial's notebooks read ($JMVAE_PLAN_OVERRIDES), else none."""
    return json.loads(os.environ.get(PLAN_ENV) or "{}")


@dataclass(frozen=True)
class Environment:
    """The folders and settings one `reproduce` call works with.

    results_dir, data_dir, celeba_dir: absolute folders. overrides: a trial's plan overrides
    ({} for the study itself). threads: OpenMP threads per run (None: the process's own).
    """

    results_dir: Path
    data_dir: Path
    celeba_dir: Path
    overrides: dict = field(default_factory=dict)
    threads: int | None = None

    @classmethod
    def resolve(
        cls, results_dir=None, data_dir_=None, celeba_dir_=None, overrides=None, threads=None
    ) -> Environment:
        """Explicit values first, then this process's variables, then the repository's folders."""
        data = Path(data_dir_) if data_dir_ is not None else data_dir()
        if celeba_dir_ is not None:
            celeba = Path(celeba_dir_)
        else:  # the process's own choice, else inside the data folder chosen here
            celeba = Path(os.environ.get(CELEBA_ENV, data / "celeba"))
        results = Path(results_dir) if results_dir is not None else results_root()
        return cls(
            results_dir=results.resolve(),
            data_dir=data.resolve(),
            celeba_dir=celeba.resolve(),
            overrides=dict(overrides or {}),
            threads=threads,
        )

    def variables(self) -> dict[str, str]:
        """The environment variables that carry this environment into a notebook kernel."""
        out = {
            RESULTS_ENV: str(self.results_dir),
            DATA_ENV: str(self.data_dir),
            CELEBA_ENV: str(self.celeba_dir),
        }
        if self.overrides:
            out[PLAN_ENV] = json.dumps(self.overrides)
        if self.threads is not None:
            out[THREADS_ENV] = str(self.threads)
        return out

    def kernel_variables(self) -> dict[str, str]:
        """A kernel's whole environment: this process's, with this environment's variables
        (a trial's overrides never leak into a study's kernel, nor the reverse)."""
        inherited = {k: v for k, v in os.environ.items() if k != PLAN_ENV}
        return inherited | self.variables()

    def to_dict(self) -> dict:
        """Plain values, for a task sent to another process (executors.run_group)."""
        return {
            "results_dir": str(self.results_dir), "data_dir": str(self.data_dir),
            "celeba_dir": str(self.celeba_dir), "overrides": self.overrides,
            "threads": self.threads,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> Environment:
        return cls(
            results_dir=Path(d["results_dir"]), data_dir=Path(d["data_dir"]),
            celeba_dir=Path(d["celeba_dir"]), overrides=d["overrides"], threads=d["threads"],
        )  # fmt: skip
