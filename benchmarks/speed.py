"""The speed benchmark: one command, every figure side by side, with the device named.

Usage (the study's python; the libraries get their own venv, see compare_libraries.py):
    python benchmarks/speed.py [--device cpu] [--epochs 2] [--n-train 60000]
        [--rs 1,8,32,64] [--batched-n-train 2000] [--n-test 10000] [--k 1000]
        [--no-libraries] [--out benchmarks/results]

Back to back in one invocation, on one device (MNIST JMVAE-kl, alpha 0.1, batch 100):
1. the measured matmul peak in float32 and bfloat16 (best of the shapes the study uses);
2. seconds per epoch of one run, epoch by epoch interleaved: the plain reference loop
   (float32), our fit() in float32 and, where the hardware multiplies bfloat16 natively, in
   bfloat16 autocast (TrainConfig.precision); then multivae and pixyz in their own venv;
3. milliseconds per epoch per run when R runs train together (fit_batched), R = --rs;
4. the k-sample marginal log p(x) over --n-test test images, float32 and "auto" precision;
5. peak memory per part (CUDA: peak allocation; CPU, Linux: peak resident size).
Each speed figure is also given as a fraction of the measured matmul peak: the FLOPs the
matmuls of the step need (counted from the layer shapes) per second, over the peak.
Writes <out>/<device-slug>-speed.json and prints a table.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import compare_libraries  # noqa: E402
import reference_loop  # noqa: E402

from jmvae_core.config import ALPHAS, make_config  # noqa: E402
from jmvae_core.data.mnist import load_mnist, mnist_dir, read_idx  # noqa: E402
from jmvae_core.measure import estimators  # noqa: E402
from jmvae_core.models import build_model  # noqa: E402
from jmvae_core.store import device_name, write_benchmark  # noqa: E402
from jmvae_core.training import fit  # noqa: E402
from jmvae_core.training.batched import fit_batched  # noqa: E402

ALPHA = 0.1
PEAK_SHAPES = [(2048, 2048, 2048), (100, 512, 512), (100, 794, 512), (4096, 512, 784)]


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device, dtype, seconds=1.0) -> dict:
    """Best GFLOP/s of (m, k) @ (k, n) over PEAK_SHAPES, each timed for about `seconds`."""
    best = {}
    for m, k, n in PEAK_SHAPES:
        a = torch.randn(m, k, device=device, dtype=dtype)
        b = torch.randn(k, n, device=device, dtype=dtype)
        for _ in range(3):
            a @ b
        _sync(device)
        reps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(10):
                a @ b
            reps += 10
            _sync(device)
        rate = 2 * m * k * n * reps / (time.perf_counter() - start) / 1e9
        best[f"{m}x{k}x{n}"] = round(rate, 1)
    return {"gflops": max(best.values()), "by_shape": best}


def linear_macs(module: nn.Module) -> int:
    """Multiply-adds of one pass of every nn.Linear in `module` for one example."""
    return sum(m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear))


def peak_memory(device) -> float:
    """MiB: CUDA's peak allocation, or the process's peak resident size (CPU), since the last
    _reset_memory (on Linux; elsewhere the process's peak so far)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _reset_memory(device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # Linux: "5" resets the peak resident size (VmHWM) to the current size
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


class _Trainer:
    """One run stepped epoch by epoch, so that the contenders can be interleaved."""

    def __init__(self, kind: str, data, device):
        self.kind, self.data, self.device, self.epoch = kind, data, device, 0
        if kind == "reference_loop":
            self.model, self.opt = reference_loop.make(alpha=ALPHA, seed=1)
            self.model.to(device)
            return
        precision = "bf16" if kind == "fit_bf16" else "fp32"
        self.cfg = make_config("quick", variant="jmvae_kl", alpha=ALPHA, precision=precision)
        torch.manual_seed(self.cfg.train.seed)  # as fit()
        self.model = build_model(self.cfg.model).to(device)
        self.opts = fit.make_optimizers(self.model, self.cfg.train, device)
        self.gen = torch.Generator(device=device).manual_seed(self.cfg.train.seed)

    def epoch_seconds(self) -> float:
        # the plain loop runs with PyTorch's default; fit() flushes subnormals
        if self.device.type == "cpu":
            torch.set_flush_denormal(self.kind != "reference_loop")
        _sync(self.device)
        start = time.perf_counter()
        if self.kind == "reference_loop":
            reference_loop.train_epoch(self.model, self.opt, self.data.x_train, self.data.w_train)
        else:  # exactly one epoch of fit(), without its checkpoint and progress bar
            fit._run_epoch(self.model, self.opts, self.data, self.cfg, self.epoch, self.gen)
        _sync(self.device)
        self.epoch += 1
        return time.perf_counter() - start


def single_run_epochs(data, device, epochs: int, kinds: list[str]) -> dict[str, list[float]]:
    trainers = {kind: _Trainer(kind, data, device) for kind in kinds}
    seconds: dict[str, list[float]] = {kind: [] for kind in kinds}
    for e in range(epochs):
        for kind, trainer in trainers.items():
            seconds[kind].append(trainer.epoch_seconds())
            print(f"  epoch {e + 1} {kind:15s} {seconds[kind][-1]:8.2f} s", flush=True)
    return seconds


def batched_runs(device, rs: list[int], n_train: int | None) -> list[dict]:
    data = load_mnist(device=device, n_train=n_train)
    warm = load_mnist(device=device, n_train=1000)  # untimed: library and allocator warm-up
    fit_batched(_cfgs(2, 1000), warm, device, progress=False)
    rows = []
    for r in rs:
        _reset_memory(device)
        _, histories = fit_batched(_cfgs(r, n_train), data, device, progress=False)
        epoch_s = histories[0][-1]["time_s"] * r
        rows.append(
            {
                "runs": r,
                "n_train": data.x_train.shape[0],
                "ms_per_epoch": 1000 * epoch_s,
                "ms_per_epoch_per_run": 1000 * epoch_s / r,
                "peak_mib": peak_memory(device),
            }
        )
        print(f"  R={r:<3} {rows[-1]['ms_per_epoch_per_run']:9.1f} ms/epoch/run", flush=True)
    return rows


def _cfgs(runs: int, n_train):
    return [
        make_config(
            "quick", variant="jmvae_kl", alpha=ALPHAS[r % 3], seed=r + 1, epochs=1, n_train=n_train
        )
        for r in range(runs)
    ]


def evaluation(model, data, device, k: int) -> list[dict]:
    rows = []
    for precision in ("fp32", "auto"):
        resolved = estimators.resolve_precision(precision, model, device)
        _reset_memory(device)
        _sync(device)
        start = time.perf_counter()
        values = estimators.evaluate(
            model,
            data.x_test,
            data.w_test,
            names=["marginal"],
            k=k,
            seed=0,
            progress=False,
            precision=precision,
        )["marginal"]
        _sync(device)
        rows.append(
            {
                "precision": resolved,
                "seconds": time.perf_counter() - start,
                "n_test": len(values),
                "k": k,
                "marginal": float(values.mean()),
                "peak_mib": peak_memory(device),
            }
        )
        print(f"  marginal k={k} {resolved}: {rows[-1]['seconds']:.1f} s", flush=True)
    return rows


def libraries(data, epochs: int, venv: Path) -> dict:
    """multivae and pixyz, each in a subprocess of its own venv (compare_libraries.py)."""
    install = compare_libraries.ensure_venv(venv)
    labels = read_idx(mnist_dir() / "train-labels-idx1-ubyte")[: data.x_train.shape[0]]
    out = {}
    with tempfile.TemporaryDirectory() as scratch:
        npz = Path(scratch) / "mnist_train.npz"
        x = data.x_train.cpu().numpy().astype(np.float32)
        np.savez(npz, x=x, y=labels.astype(np.int64))
        for lib in compare_libraries.LIBRARIES:
            if install[lib] != "ok":
                out[lib] = {"not_run": install[lib]}
                continue
            python = compare_libraries.venv_python(venv)
            print(f"  {lib} ...", flush=True)
            out[lib] = compare_libraries.time_library(lib, python, npz, epochs, Path(scratch))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: best available)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--n-train", type=int, default=None, help="single-run epochs: subset")
    parser.add_argument("--rs", default="1,8,32,64")
    parser.add_argument("--batched-n-train", type=int, default=None, help="batched runs: subset")
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--no-libraries", action="store_true")
    parser.add_argument("--venv", type=Path, default=HERE / ".venv-libs")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    device = fit.pick_device(args.device)
    native_bf16 = (
        estimators.resolve_precision("auto", build_model(_cfgs(1, None)[0].model), device) == "bf16"
    )
    report = {
        "device": compare_libraries.device_label(torch)
        if device.type == "cpu"
        else device_name(device),
        "torch": torch.__version__.split("+")[0],
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "native_bf16": native_bf16,
        "command": "python benchmarks/speed.py " + " ".join(sys.argv[1:]),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    print(f"device: {report['device']} ({report['threads']} threads)", flush=True)

    print("1. matmul peak", flush=True)
    report["peak"] = {"fp32": matmul_peak(device, torch.float32)}
    if native_bf16:
        report["peak"]["bf16"] = matmul_peak(device, torch.bfloat16)

    model = build_model(_cfgs(1, None)[0].model)
    macs = linear_macs(model)  # JMVAE-kl uses every layer once per example and step
    step_gflop = 6 * macs * 100 / 1e9  # forward + the two backward matmuls, batch 100
    decoder_gflop = 2 * linear_macs(model.p_x_z) / 1e9  # one decoder row of the estimator

    print("2. one run, seconds per epoch", flush=True)
    data = load_mnist(device=device, n_train=args.n_train, n_test=args.n_test)
    steps = data.x_train.shape[0] // 100
    kinds = ["reference_loop", "fit_fp32"] + (["fit_bf16"] if native_bf16 else [])
    _reset_memory(device)
    seconds = single_run_epochs(data, device, args.epochs, kinds)
    report["single_run"] = {
        kind: {
            "epoch_s": values,
            "gflops": step_gflop * steps / values[-1],
            "peak_fraction": step_gflop
            * steps
            / values[-1]
            / report["peak"]["bf16" if kind == "fit_bf16" else "fp32"]["gflops"],
        }
        for kind, values in seconds.items()
    }
    report["single_run_peak_mib"] = peak_memory(device)
    report["n_train"], report["step_gflop"] = data.x_train.shape[0], step_gflop
    if not args.no_libraries:
        report["library_notes"] = {
            "common": compare_libraries.COMMON_NOTES,
            "multivae": compare_libraries.MULTIVAE_NOTES,
            "pixyz": compare_libraries.PIXYZ_NOTES,
        }
        libs = libraries(data, args.epochs, args.venv.resolve())
        for lib, result in libs.items():
            report["single_run"][lib] = (
                {"epoch_s": result["epoch_s"], "versions": result.get("versions")}
                if "epoch_s" in result
                else {"not_run": result.get("not_run") or result}
            )

    print("3. R runs together", flush=True)
    rs = [int(r) for r in args.rs.split(",")]
    report["batched"] = batched_runs(device, rs, args.batched_n_train)
    for row in report["batched"]:
        steps_b = row["n_train"] // 100
        rate = step_gflop * steps_b / (row["ms_per_epoch_per_run"] / 1000)
        row["peak_fraction"] = rate / report["peak"]["fp32"]["gflops"]

    print("4. evaluation", flush=True)
    trained = _Trainer("fit_fp32", data, device)
    trained.epoch_seconds()  # one epoch: a model whose decoder is not at its initialisation
    report["evaluation"] = evaluation(trained.model.eval(), data, device, args.k)
    for row in report["evaluation"]:
        rate = decoder_gflop * row["n_test"] * row["k"] / row["seconds"]
        row["peak_fraction"] = rate / report["peak"][row["precision"]]["gflops"]

    print_table(report)
    path = write_benchmark(report, args.out, "speed")
    print(f"wrote {path}")


def print_table(r: dict) -> None:
    print(f"\n== {r['device']}, torch {r['torch']}, {r['threads']} threads ==")
    for dtype, peak in r["peak"].items():
        print(f"matmul peak {dtype}: {peak['gflops']:.0f} GFLOP/s")
    ref = r["single_run"]["reference_loop"]["epoch_s"][-1]
    print(
        f"one run, epoch {len(r['single_run']['reference_loop']['epoch_s'])}, "
        f"{r['n_train']} images:"
    )
    for kind, row in r["single_run"].items():
        if "epoch_s" not in row:
            print(f"  {kind:15s} not run: {str(row.get('not_run'))[:80]}")
            continue
        last = row["epoch_s"][-1]
        frac = f", {100 * row['peak_fraction']:.0f}% of peak" if "peak_fraction" in row else ""
        print(f"  {kind:15s} {last:8.2f} s  ({ref / last:.2f}x the plain loop{frac})")
    print("R runs together:")
    for row in r["batched"]:
        print(
            f"  R={row['runs']:<3} {row['ms_per_epoch_per_run']:9.1f} ms/epoch/run "
            f"({row['n_train']} images), {100 * row['peak_fraction']:.0f}% of fp32 peak, "
            f"{row['peak_mib']:.0f} MiB"
        )
    for row in r["evaluation"]:
        print(
            f"marginal log p(x), k={row['k']}, {row['n_test']} images, {row['precision']}: "
            f"{row['seconds']:.1f} s ({100 * row['peak_fraction']:.0f}% of its peak), "
            f"{row['peak_mib']:.0f} MiB"
        )


if __name__ == "__main__":
    main()
