"""jmvae_core.pages.celeba: the tables, strings and figures of the setup, provenance, performance,
status, face and 2-D latent pages, on the committed results and benchmarks or small synthetic
inputs. Every table is indexed by a name (never 0..n) and keeps hashes whole."""

import json

import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pandas as pd
import pytest

from jmvae_core import config, environment
from jmvae_core.data.mnist import MNIST_MD5
from jmvae_core.pages import (
    celeba,
    latent,
    layout,
    performance,
    reproducibility,
    results,
    setup,
    status,
)

HASH = "e77dfb4088652904d11036febe4292ace9258cf3fd3899762caba6a64e3e1f17"


def _named(table: pd.DataFrame) -> None:
    """Indexed by named keys (run id, model, epoch, ...), never a bare 0..n."""
    assert all(name for name in table.index.names), table.index


def _run(run_id, dataset="mnist", commit="62063af", test_hash=HASH, **extra):
    return {
        "run_id": run_id, "dataset": dataset, "variant": run_id.split("-")[0], "epochs": 12,
        "device_name": "cpu (x86_64, 2 cores)", "torch": "2.14.1", "python": "3.11.7",
        "git_commit": commit, "train_time_s": 100.0, "eval_time_s": 20.0,
        "test_hash": test_hash, "test_binarize_seed": 0 if dataset == "mnist" else None,
        **extra,
    }  # fmt: skip


@pytest.fixture(scope="module")
def face_runs():
    return results.load_runs("quick", dataset="standin")


# ---------------------------------------------------------------------------------- setup


def test_setup_tables_are_read_from_the_config():
    defaults = setup.defaults_table()
    _named(defaults)
    assert defaults.loc[("model", "variant"), "default"] == config.ModelConfig().variant
    assert defaults.loc[("eval", "n_test"), "default"] == "None"  # shown, not NaN
    profiles = setup.profiles_table()
    assert list(profiles.columns) == list(config.PROFILE_SETTINGS)
    assert profiles.loc["seeds", "paper"] == str(config.PROFILE_SEEDS["paper"])
    faces = setup.face_profiles_table()
    _named(faces)
    assert list(faces.columns) == list(config.PROFILES)
    assert faces.loc["model.width", "quick"] == "16" and "model.variant" not in faces.index


@pytest.mark.parametrize("dataset", ["mnist", "standin"])
def test_plan_table_lists_every_planned_run_by_id(dataset):
    table = setup.plan_table("smoke", dataset)
    assert table.index.name == "run id"
    assert list(table.index) == [c.run_id for c in config.plan("smoke", dataset)]
    facts = setup.setup_facts("smoke")
    assert facts["n_runs"] == len(config.plan("smoke"))
    assert facts["n_face_runs"] == len(config.plan("smoke", "standin"))
    assert facts["schedule"] == "2 epochs, k = 20"


# ------------------------------------------------------------------------ reproducibility


def test_provenance_puts_face_runs_beside_mnist_runs_with_whole_hashes():
    mnist = [_run("vae-z64-s1-d81944bcde"), _run("cvae-z64-s1-c2eb55e07b", commit="440a541")]
    faces = [_run("vae_gan-z128-s1-b930b87242", dataset="standin", commit="e4679b5-dirty",
                  test_hash="8" * 64)]  # fmt: skip
    table = reproducibility.provenance_table(mnist, faces)
    assert table.index.name == "run id"
    assert list(table.index) == [r["run_id"] for r in mnist + faces]
    assert list(table["dataset"]) == ["mnist", "mnist", "standin"]
    assert "e4679b5-dirty" in table["git_commit"].tolist()
    assert "torch" not in table.columns  # shared by all: said once
    assert reproducibility.provenance_shared(mnist, faces) == (
        "device cpu (x86_64, 2 cores), torch 2.14.1, Python 3.11.7"
    )
    other = [*mnist, _run("vae-z2-s1-7955bdbf17", torch="2.15.0")]
    assert "torch" in reproducibility.provenance_table(other, faces).columns
    sets = reproducibility.eval_sets_table(mnist, faces)
    assert sets.index.name == "dataset" and list(sets["runs"]) == [2, 1]
    assert sets.loc["mnist", "test set SHA-256"] == HASH
    assert sets.loc["mnist", "binarisation seed"] == 0  # not 0.0
    assert sets.loc["standin", "binarisation seed"] == "—"
    facts = reproducibility.provenance_facts(mnist, faces)
    assert facts["n_mnist"] == 2 and facts["n_faces"] == 1 and facts["n_commits"] == 3
    assert facts["one_test_set"] == "yes"
    assert (
        reproducibility.provenance_facts(mnist + [_run("x-1", test_hash="0")], [])["one_test_set"]
        == "no"
    )


def test_checksums_name_mnist_files_and_the_face_data(face_runs):
    table = reproducibility.checksums_table(face_runs)
    _named(table)
    assert len(table.loc["MNIST (MD5)"]) == len(MNIST_MD5)
    digests = face_runs[0]["data_manifest"]["sha256"]
    assert set(digests.values()) <= set(table["checksum"])
    assert table["checksum"].str.len().max() == 64  # whole SHA-256, not cut


def test_provenance_page_renders_without_face_runs(tmp_path, monkeypatch):
    monkeypatch.setenv(environment.RESULTS_ENV, str(tmp_path))
    assert reproducibility.load_face_runs("smoke") == []
    mnist = [_run("vae-z64-s1-d81944bcde")]
    assert len(reproducibility.provenance_table(mnist, [])) == 1
    assert reproducibility.provenance_facts(mnist, [])["n_faces"] == 0


def test_whole_strings_are_displayed():
    layout.setup_display()
    frame = pd.DataFrame({"test_hash": [HASH]}, index=pd.Index(["a"], name="run id"))
    assert HASH in frame.to_string() and HASH in frame._repr_html_()


# ---------------------------------------------------------------------------- performance


def test_performance_tables_from_the_committed_benchmarks():
    speed, _ = results.load_benchmark("amd-epyc-2-cores-speed")
    prec, _ = results.load_benchmark("cpu-x86-64-2-cores-estimator-precision")
    bf16, _ = results.load_benchmark("cpu-x86-64-2-cores-bf16-training")
    libs, lib_entries = results.load_benchmark("cpu-x86-64-2-cores-libraries")
    first, first_entries = results.load_benchmark("cpu-x86-64-2-cores")
    step, _ = results.load_benchmark("cpu-x86-64-2-cores-plan-step")
    group, _ = results.load_benchmark("nvidia-h200-per-group-step")
    gpu, _ = results.load_benchmark("device-check-nvidia-h200")
    tables = [
        performance.single_run_table(speed), performance.library_notes_table(speed),
        performance.batched_table(speed), performance.evaluation_table(speed),
        performance.precision_table(prec), performance.bf16_training_table(bf16),
        performance.libraries_table(libs, lib_entries),
        performance.first_speed_table(first_entries),
        performance.plan_step_table(step), performance.per_group_table(group),
        performance.gpu_table(gpu),
    ]  # fmt: skip
    for table in tables:
        _named(table)
        assert not table.empty
    single = tables[0]
    assert single.loc["plain PyTorch loop (fp32)", "plain loop / this"] == 1.0
    facts = performance.single_run_facts(speed)
    assert facts["fit_fp32"] == single.loc["jmvae_core fit(), fp32", "plain loop / this"]
    assert set(performance.evaluation_facts(speed)) == {"fp32", "bf16"}
    assert tables[6].loc["jmvae_core fit()", "epoch 2 / fit()"] == 1.0
    notes = tables[1]["difference"].str.cat()
    assert "SPEC" not in notes and "§" not in notes and "the authors' protocol" in notes
    headers = [
        performance.speed_header(speed), performance.precision_header(prec),
        performance.bf16_training_summary(bf16), performance.libraries_header(libs),
        performance.first_speed_header(first, first_entries), performance.plan_step_header(step),
        performance.gpu_header(gpu),
    ]  # fmt: skip
    assert all(isinstance(h, str) and h for h in headers)
    assert "not shown" in performance.bf16_training_summary(bf16)  # +0.167 ± 0.070 > 0.1


# --------------------------------------------------------------------------------- status


def _executed(path, seconds, profile="smoke"):
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {
        "duration": seconds, "end_time": "2026-11-30T01:02:03.456", "exception": None,
        "parameters": {"profile": profile},
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def test_status_splits_measured_minutes_by_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv(environment.RESULTS_ENV, str(tmp_path / "results"))
    runs = tmp_path / "results" / "smoke" / "runs"
    for run_id, dataset, seconds in [("vae-a", "mnist", 120), ("vae_gan-b", "standin", 300)]:
        (runs / run_id).mkdir(parents=True)
        (runs / run_id / "config.json").write_text(json.dumps({"dataset": dataset}))
        _executed(runs / run_id / "train.ipynb", seconds)
        _executed(runs / run_id / "evaluate.ipynb", seconds / 2)
    book = tmp_path / "book"
    _executed(book / "notebooks" / "setup.ipynb", 6)
    _executed(book / "notebooks" / "celeba.ipynb", 12)
    table = status.status_table("smoke", book)
    assert table.index.name == "notebook"
    assert table.loc["vae_gan-b/train.ipynb", "part"] == "face runs"
    assert table.loc["vae-a/evaluate.ipynb", "dataset"] == "mnist"
    assert table.loc["notebooks/celeba.ipynb", "part"] == "result notebooks"
    assert table.loc["notebooks/setup.ipynb", "finished"] == "2026-11-30 01:02:03"
    minutes = status.status_minutes(table)
    assert minutes.loc["total", "notebooks"] == 6
    facts = status.status_facts(table)
    assert facts == {"mnist": 3.0, "faces": 7.5, "notebooks": 0.3, "total": 10.8}
    assert all(isinstance(v, float) for v in facts.values())


def test_status_of_a_profile_without_runs(tmp_path, monkeypatch):
    monkeypatch.setenv(environment.RESULTS_ENV, str(tmp_path / "results"))
    table = status.status_table("smoke", tmp_path / "empty-book")
    assert table.empty
    assert status.status_facts(table) == {"mnist": 0.0, "faces": 0.0, "notebooks": 0.0,
                                          "total": 0.0}  # fmt: skip


# ---------------------------------------------------------------------------------- faces


def test_face_tables_and_strings_on_the_committed_standin_runs(face_runs):
    banner = celeba.face_banner("standin")
    assert "STAND-IN DATA" in banner
    assert "6 runs" in celeba.face_header(face_runs, "quick")
    tables = [
        celeba.rec_table(face_runs), celeba.table2(face_runs), celeba.claim4_table(face_runs),
        celeba.attribute_table(face_runs), celeba.coherence_summary(face_runs),
        celeba.coherence_table(face_runs),
    ]  # fmt: skip
    for table in tables:
        _named(table)
    claim = celeba.claim4_table(face_runs)
    assert list(claim.index.names) == ["JMVAE form", "against"] and len(claim) == 6
    verdict = celeba.claim4_verdict(face_runs, banner)
    assert verdict.endswith(banner) and verdict.startswith(celeba.claim4_verdict(face_runs))
    # every face run stores its per-face estimates, so the differences are paired: their
    # errors are a few nats (unpaired, from the two test-set errors, they were ~65 nats)
    errors = [float(cell.split("±")[1]) for cell in claim["Δ ± SE"]]
    assert max(errors) < 10
    against_cvae = claim.xs("CVAE-GAN", level="against")["JMVAE better"]
    assert set(against_cvae) == {"no"}  # CVAE-GAN's log p(x|w) is the higher on the stand-in
    assert set(claim.drop(index="CVAE-GAN", level="against")["JMVAE better"]) == {"yes"}
    assert verdict.startswith("not supported (4 of 6 comparisons better by 2 SE, 2 worse)")
    assert "–" in celeba.rec_drop_text(face_runs)
    assert celeba.kl_gan_coherence(face_runs).startswith("0.")
    assert float(celeba.judge_accuracy(face_runs)) > 0.5
    facts = celeba.face_facts(face_runs)
    assert isinstance(facts["best_marginal"], float) and facts["n_runs"] == 6


def test_face_figures_are_closed_figures(face_runs):
    banner = celeba.face_banner("standin")
    open_before = plt.get_fignums()
    figures = [
        celeba.rec_figure(face_runs, banner), celeba.recon_figure(face_runs, banner),
        celeba.attribute_faces_figure(face_runs, banner),
        celeba.edit_figure(face_runs, "jmvae_gan", banner),
        celeba.coherence_figure(face_runs, banner), celeba.coherence_figure([], banner),
    ]  # fmt: skip
    assert all(isinstance(fig, plt.Figure) for fig in figures)
    assert plt.get_fignums() == open_before  # closed: shown where glued, not twice


def test_faces_without_a_judge_say_so():
    assert celeba.coherence_summary([]).empty
    assert celeba.kl_gan_coherence([]).startswith("no coherence results")
    assert celeba.judge_accuracy([]).startswith("no coherence results")


# --------------------------------------------------------------------------------- latent


def test_nearest_mean_accuracy_separates_clusters():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 50)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    apart = centres[labels] + rng.normal(size=(150, 2))
    assert latent.nearest_mean_accuracy(apart, labels) == 1.0
    mixed = rng.normal(size=(150, 2))
    assert latent.nearest_mean_accuracy(mixed, labels) < 0.8


def test_latent_panels_table_and_figure_on_the_committed_2d_runs():
    runs = latent.latent_runs(results.load_runs("quick", planned_only=False))
    assert {r["latent_dim"] for r in runs} == {2}
    separation = latent.latent_separation(runs)
    assert separation.index.name == "encoder" and len(separation) == 6
    assert separation.loc["JMVAE-kl: q(z|x,w)", "nearest digit-mean accuracy"] > 0.5
    facts = latent.latent_facts(separation)
    assert isinstance(facts["best_accuracy"], float) and facts["best"] in separation.index
    assert facts["cvae_accuracy"] == separation.loc["CVAE: q(z|x,w)"].iloc[0]
    assert not facts["worst"].startswith("CVAE")
    assert isinstance(latent.latent_figure(runs, "quick"), plt.Figure)
    assert latent.latent_caption(runs, "quick").startswith("quick profile")
