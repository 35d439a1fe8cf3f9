"""The speed benchmark command runs end to end (tiny sizes) and writes what the book reads."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_speed_benchmark_writes_every_part(tmp_path):
    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--epochs", "2", "--n-train",
        "300", "--rs", "1,2", "--batched-n-train", "200", "--n-test", "20", "--k", "8",
        "--no-libraries", "--out", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (path,) = tmp_path.glob("*-speed.json")
    report = json.loads(path.read_text())
    assert report["device"] in done.stdout  # the device is named in the printed table
    assert report["peak"]["fp32"]["gflops"] > 0
    kinds = {"reference_loop", "fit_fp32"} | ({"fit_bf16"} if report["native_bf16"] else set())
    assert set(report["single_run"]) == kinds
    for row in report["single_run"].values():
        assert len(row["epoch_s"]) == 2 and 0 < row["peak_fraction"] < 1.5
    assert [row["runs"] for row in report["batched"]] == [1, 2]
    evaluation = {row["precision"] for row in report["evaluation"]}
    assert "fp32" in evaluation and all(row["n_test"] == 20 for row in report["evaluation"])


def test_step_speed_benchmark_times_both_steps_and_finds_equal_weights(tmp_path):
    """benchmarks/step_speed.py at tiny sizes: every part of both steps, the matmul time, the
    epochs of both trainings, and equal weights at the end (the two steps compute the same)."""
    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "step_speed.py"), "--threads", "1",
        "--epochs", "2", "--steps", "5", "--n-train", "300", "--out", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (path,) = tmp_path.glob("*-step-speed.json")
    report = json.loads(path.read_text())
    (row,) = report["by_threads"]
    assert set(row["parts_ms"]) == {"fit", "reference"}
    assert all(ms > 0 for parts in row["parts_ms"].values() for ms in parts.values())
    assert 0 < row["matmul_ms_at_peak"] and 0 < row["matmul_ms_in_step"]
    assert len(row["fit_epoch_s"]) == len(row["reference_epoch_s"]) == 2
    assert row["weights_equal"] is True
    assert report["clipping"]["tensors"] == 38


def test_step_floor_benchmark_times_every_kernel_a_step_cannot_avoid(tmp_path):
    """benchmarks/step_floor.py at tiny sizes: both whole steps, the floor's five parts summing
    to its total, the matmuls inside the step; the Performance page's figures follow from it."""
    from jmvae_core.pages import performance

    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "step_floor.py"), "--threads", "1",
        "--steps", "3", "--reps", "3", "--n-train", "1000", "--out", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (path,) = tmp_path.glob("*-step-floor.json")
    report = json.loads(path.read_text())
    (row,) = report["by_threads"]
    floor = row["floor_ms"]
    parts = {"forward", "weight_grad", "input_grad", "adam", "norms"}
    assert set(floor) == parts | {"total"} and all(floor[p] > 0 for p in parts)
    assert abs(sum(floor[p] for p in parts) - floor["total"]) < 1e-9
    assert set(row["step_ms"]) == {"reference", "fit"} and row["matmul_in_step_ms"] > 0
    values = performance.step_floor_values(report)
    assert values["most_1"] == f"{row['step_ms']['reference'] / floor['total']:.2f}"
    room = row["step_ms"]["reference"] / 1.6 - floor["total"]
    assert values["room_1"] == f"{room:.1f}"
    assert ("1 thread", "floor") in performance.step_floor_table(report).index
