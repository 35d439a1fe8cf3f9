"""Executing a notebook with papermill, in a kernel given its environment; results-first tags.

Every notebook the study executes (a run's train/evaluate, the result notebooks) goes through
`execute`: the kernel starts with the variables of an `environment.Environment` and nothing is
set in this process's os.environ. Imports papermill and nbformat only when called.
"""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from pathlib import Path

from jmvae_core import store
from jmvae_core.environment import Environment


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names its executed copy and the failing cell."""


def _kernel_manager(variables: dict[str, str]):
    """An AsyncKernelManager class whose kernels start with `variables` as their environment."""
    from jupyter_client import AsyncKernelManager

    class KernelManager(AsyncKernelManager):
        def __init__(self, **kw):
            super().__init__(**kw)
            if os.name == "posix":  # local sockets, no TCP port (and no "without encryption"
                # warning), named apart: kernels started at the same time must not share them
                self.transport = "ipc"
                self.ip = os.path.join(tempfile.gettempdir(), f"jmvae-kernel-{uuid.uuid4().hex}")

        async def start_kernel(self, **kw):
            return await super().start_kernel(**{"env": dict(variables), **kw})

    return KernelManager


def execute(
    notebook: str, output: Path, parameters: dict, cwd: Path, inputs: str | None = None,
    env: Environment | None = None,
) -> None:  # fmt: skip
    """Execute notebooks/<notebook>.ipynb with papermill into `output`, in a kernel started
    with `env`'s variables (None: this process's environment); explain failures."""
    import papermill as pm

    source = cwd / "notebooks" / f"{notebook}.ipynb"
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    variables = dict(os.environ) if env is None else env.kernel_variables()
    manager = {"kernel_manager_class": _kernel_manager(variables)}
    # papermill saves after every cell: it writes a sibling, renamed over `output` when done, so
    # that no reader (another process, the book) ever meets a half-written notebook
    tmp = output.with_name(f"tmp-{os.getpid()}-{threading.get_ident()}-{output.name}")
    try:
        pm.execute_notebook(
            str(source), str(tmp), parameters=parameters, kernel_name="python3",
            progress_bar=False, cwd=str(cwd), log_output=False, **manager,
        )  # fmt: skip
    except pm.PapermillExecutionError as err:
        os.replace(tmp, output)  # the failed copy, where the message says
        raise NotebookFailed(
            f"{output} failed in cell {err.exec_count}: {err.ename}: {err.evalue}"
        ) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    relative_paths(tmp, cwd, inputs, output=output)
    os.replace(tmp, output)


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


def relative_paths(
    notebook: Path, base: Path, inputs: str | None = None, output: Path | None = None
) -> None:
    """Store papermill's input/output paths relative to `base` (no machine paths in results;
    the output path is `output` where the notebook will be renamed to), and, for result
    notebooks, the key of the inputs they were executed on; tag the cells for a results-first
    page (results_first)."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    results_first(nb)
    meta = nb.metadata.get("papermill", {})
    if output is not None and meta.get("output_path"):
        meta["output_path"] = str(output)
    for key in ("input_path", "output_path"):
        if meta.get(key) and os.path.isabs(meta[key]):
            meta[key] = os.path.relpath(meta[key], base)
    if inputs is not None:
        nb.metadata["jmvae"] = {"inputs": inputs}
    store.write_text(notebook, nbformat.writes(nb))
