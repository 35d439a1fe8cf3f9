"""The face half end to end (smoke profile): the stand-in through papermill, and the CelebA
path started on a fixture in CelebA's file layout (book/celeba.md)."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from jmvae_core import environment, models, store
from jmvae_core.config import IMAGE_VARIANTS, plan
from jmvae_core.data import standin
from jmvae_core.pages import results
from jmvae_core.study import pipeline, runs

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def standin_smoke(tmp_path_factory):
    base = tmp_path_factory.mktemp("faces")
    mp = pytest.MonkeyPatch()
    mp.setenv(environment.RESULTS_ENV, str(base / "results"))
    summary = pipeline.reproduce(
        "smoke", dataset="standin", book_dir=base / "book", build=False, progress=False
    )
    yield base, summary
    mp.undo()


def _outputs(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return json.dumps([c.get("outputs", []) for c in nb.cells])


def test_every_face_variant_runs_and_reports_both_conventions(standin_smoke):
    base, summary = standin_smoke
    cfgs = plan("smoke", "standin")
    assert sorted(c.model.variant for c in cfgs) == sorted(IMAGE_VARIANTS)
    assert len(summary.ran) == len(cfgs) and not summary.failed
    for cfg in cfgs:
        folder = store.run_dir("smoke", cfg.run_id, base / "results")
        metrics = json.loads((folder / "metrics.json").read_text())
        assert set(metrics["estimators"]) == set(models.estimator_names(cfg.model.variant))
        assert metrics["dataset"] == "standin" and "/" not in json.dumps(
            metrics["data_manifest"]["data_folder"]
        )
        generates = cfg.model.variant != "vae_gan"
        assert (folder / "coherence.csv").exists() == generates
        assert (folder / "attributes.csv").exists() == ("jmvae" in cfg.model.variant)


def test_face_chapter_executes_on_the_standin_and_says_so(standin_smoke):
    base, _ = standin_smoke
    text = _outputs(base / "book" / "notebooks" / "celeba.ipynb")
    assert "STAND-IN DATA" in text and "Traceback" not in text
    assert "not available" in text  # the paper's Table 2 column


@pytest.fixture(scope="module")
def celeba_fixture(tmp_path_factory):
    """300 drawn faces written in CelebA's file layout (16 attribute columns)."""
    folder = tmp_path_factory.mktemp("celeba_layout") / "celeba"
    return standin.write_standin(folder, n=300, seed=3, progress=False)


def test_celeba_reproduce_runs_on_a_fixture_in_the_celeba_layout(
    celeba_fixture, tmp_path, monkeypatch
):
    """`jmvae reproduce --dataset celeba --data-dir DIR` on files laid out like CelebA: the
    Haar-cascade crop, every run of the plan, the chapter (without coherence) executed."""
    cmd = [sys.executable, "-m", "jmvae_core.study.cli", "reproduce", "--profile", "smoke"]
    cmd += ["--dataset", "celeba", "--data-dir", str(celeba_fixture), "--no-build"]
    cmd += ["--results-dir", str(tmp_path / "results"), "--book-dir", str(tmp_path / "book")]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"ran {len(IMAGE_VARIANTS)} run(s)" in done.stdout
    monkeypatch.setenv(environment.CELEBA_ENV, str(celeba_fixture))  # the plan reads its header
    done_runs = results.load_runs("smoke", tmp_path / "results", dataset="celeba")
    counts = done_runs[0]["data_manifest"]["counts"]
    assert done_runs[0]["data_manifest"]["options"]["crop"] == "haar"
    assert counts["used"] >= 1 and counts["listed"] == 300
    text = _outputs(tmp_path / "book" / "notebooks" / "celeba.ipynb")
    assert "CelebA (the real files)" in text and "no coherence results" in text


def test_celeba_quick_profile_starts_on_the_fixture(celeba_fixture, tmp_path, monkeypatch):
    """The documented quick command's plan on the fixture (width 16, the file's 16 attribute
    columns, Haar crop), and its JMVAE-kl-GAN run trained for one epoch and evaluated."""
    monkeypatch.setenv(environment.CELEBA_ENV, str(celeba_fixture))
    monkeypatch.setenv(environment.RESULTS_ENV, str(tmp_path / "results"))
    cfgs = plan("quick", "celeba", epochs=1)
    assert {(c.model.width, c.model.w_dim, c.data.crop) for c in cfgs} == {(16, 16, "haar")}
    cfg = next(c for c in cfgs if c.model.variant == "jmvae_kl_gan")
    metrics = runs.run_one(runs.Run(cfg, "quick"), device="cpu", progress=False)
    assert {"marginal", "marginal_channel_mean"} <= set(metrics["estimators"])
    assert metrics["width"] == 16 and metrics["estimators"]["marginal"]["k"] == 10


def test_celeba_reproduce_names_missing_files(tmp_path):
    cmd = [sys.executable, "-m", "jmvae_core.study.cli", "reproduce", "--profile", "smoke"]
    cmd += ["--dataset", "celeba", "--data-dir", str(tmp_path / "nowhere"), "--no-build"]
    cmd += ["--results-dir", str(tmp_path / "results")]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 2
    assert "list_attr_celeba.txt" in done.stderr or "nowhere" in done.stderr


def test_a_second_standin_reproduce_needs_no_data(standin_smoke, tmp_path, monkeypatch):
    """Finished runs are read back: no stand-in images, no crops, no judge (a fresh clone)."""
    base, _ = standin_smoke
    monkeypatch.setenv("JMVAE_DATA_DIR", str(tmp_path / "empty"))
    again = pipeline.reproduce(
        "smoke", dataset="standin", book_dir=base / "book", build=False, progress=False
    )
    assert again.ran == [] and len(again.cached) == len(IMAGE_VARIANTS)
    assert not (tmp_path / "empty").exists()
