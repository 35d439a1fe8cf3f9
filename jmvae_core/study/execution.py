"""Executing a notebook with papermill, in a kernel given its environment; results-first tags.

Every notebook the study executes (a run's train/evaluate, the result notebooks) goes through
`execute`: the kernel starts with the variables of an `environment.Environment` and nothing is
set in this process's os.environ. Imports papermill and nbformat only when called.

A kernel pays about 5 s before its first cell's work (the kernel itself, then importing torch,
torch._dynamo, which every optimiser step imports, pandas and the package), more than a smoke
run's training. `Kernels` keeps one kernel per working folder and environment for the
notebooks one thread executes in turn (the runs of a plan, the result notebooks), and puts
back before each notebook what the notebook before it left (`_RESET`), so that a notebook sees
what a fresh kernel shows it, except that imported modules stay imported.
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
    """An AsyncKernelManager class whose kernels start with `variables` as their environment
    and which keeps the clients it hands out (papermill leaves them open on a kept kernel)."""
    from jupyter_client import AsyncKernelManager

    class KernelManager(AsyncKernelManager):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.handed_out = []
            if os.name == "posix":  # local sockets, no TCP port (and no "without encryption"
                # warning), named apart: kernels started at the same time must not share them
                self.transport = "ipc"
                self.ip = os.path.join(tempfile.gettempdir(), f"jmvae-kernel-{uuid.uuid4().hex}")

        async def start_kernel(self, **kw):
            return await super().start_kernel(**{"env": dict(variables), **kw})

        def client(self, **kw):
            kc = super().client(**kw)
            self.handed_out.append(kc)
            return kc

        def close_clients(self) -> None:
            while self.handed_out:
                self.handed_out.pop().stop_channels()

    return KernelManager


# Run in a kept kernel before each notebook after its first: the once-only warning registry
# (the catch-all "default" filter equals Python's default action; adding it marks the filters
# changed, which makes every module's registry stale), open figures, torch's process-wide
# switches (fit flushes subnormals for its epochs; a fresh kernel does not), the CUDA cache,
# then the namespace and the execution counter.
_RESET = """\
import sys as _sys, warnings as _warnings
_warnings.simplefilter("default", append=True)
_plt, _torch = _sys.modules.get("matplotlib.pyplot"), _sys.modules.get("torch")
if _plt is not None:
    _plt.close("all")
if _torch is not None:
    _torch.set_flush_denormal(False)
    _torch.set_grad_enabled(True)
    if _torch.cuda.is_initialized():
        _torch.cuda.empty_cache()
get_ipython().run_line_magic("reset", "-f")
get_ipython().execution_count = 1
__import__("gc").collect()
"""
KERNEL_TIMEOUT_S = 120  # to answer after a start or a reset


class Kernels:
    """Kernels kept for the notebooks that one thread executes in turn: one per working folder
    and environment, cleared before each reuse (see the module's docstring), restarted when
    one has died, shut down by `close` (a context manager). Use it from the thread that made
    it: a kernel's manager lives in that thread's event loop."""

    def __init__(self):
        self._thread = threading.get_ident()
        self._managers: dict[tuple, object] = {}

    def __enter__(self) -> Kernels:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def manager(self, variables: dict[str, str], cwd: Path):
        """The kernel manager for notebooks run in `cwd` with `variables`: a new one (its
        kernel started by the first notebook), or the kept one, cleared."""
        from jupyter_core.utils import run_sync

        if threading.get_ident() != self._thread:
            raise RuntimeError("Kernels is used from another thread than the one that made it")
        key = (str(Path(cwd).resolve()), tuple(sorted(variables.items())))
        km = self._managers.get(key)
        if km is not None and km.has_kernel and run_sync(km.is_alive)():
            run_sync(_clear)(km)
            return km
        if km is not None:  # its kernel died: start another
            run_sync(km.cleanup_resources)()
        km = self._managers[key] = _kernel_manager(variables)(kernel_name="python3")
        return km

    def close(self) -> None:
        from jupyter_core.utils import run_sync

        while self._managers:  # their clients are closed after each notebook
            km = self._managers.popitem()[1]
            if km.has_kernel:
                run_sync(km.shutdown_kernel)(now=False)


async def _clear(km) -> None:
    kc = km.client()
    kc.start_channels()
    try:
        await kc.wait_for_ready(timeout=KERNEL_TIMEOUT_S)
        reply = await kc.execute_interactive(
            _RESET, silent=True, store_history=False, allow_stdin=False, timeout=KERNEL_TIMEOUT_S
        )
    finally:
        km.close_clients()
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"clearing a kept kernel failed: {reply['content'].get('evalue')}")


def execute(
    notebook: str, output: Path, parameters: dict, cwd: Path, inputs: str | None = None,
    env: Environment | None = None, kernels: Kernels | None = None,
) -> None:  # fmt: skip
    """Execute notebooks/<notebook>.ipynb with papermill into `output`, in a kernel started
    with `env`'s variables (None: this process's environment): a kernel of its own, or the
    kept one of `kernels`; explain failures."""
    import papermill as pm

    source = cwd / "notebooks" / f"{notebook}.ipynb"
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    variables = dict(os.environ) if env is None else env.kernel_variables()
    if kernels is None:
        manager = {"kernel_manager_class": _kernel_manager(variables)}
    else:  # kept: papermill neither starts another kernel nor shuts this one down
        manager = {"km": kernels.manager(variables, cwd)}
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
    finally:
        if kernels is not None:
            manager["km"].close_clients()
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
