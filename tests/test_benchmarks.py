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
