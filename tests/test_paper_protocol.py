"""The pages read the paper profile where its runs exist: Table 1's headline, the convergence
table, the learning curve and claim 1, each labelled with its protocol, never mixed with the
quick profile in one comparison; nothing breaks while none exists."""

import json
import shutil
from pathlib import Path

import pytest

from jmvae_core import store
from jmvae_core.config import make_config
from jmvae_core.pages import latent, mnist_report, paper_protocol, results, tables, verdicts

ROOT = Path(__file__).resolve().parent.parent
QUICK = ROOT / "results" / "quick" / "runs"


def _as_paper_run(root: Path, quick_id: str, variant: str, alpha: float, latent_dim=64) -> str:
    """A committed quick run's files under the paper profile's run id, marked 500 epochs: the
    pages' reading side, exercised without training for days."""
    cfg = make_config("paper", variant=variant, alpha=alpha, latent_dim=latent_dim)
    folder = store.run_dir("paper", cfg.run_id, root)
    folder.mkdir(parents=True)
    metrics = json.loads((QUICK / quick_id / "metrics.json").read_text())
    metrics |= {"run_id": cfg.run_id, "profile": "paper", "epochs": 500}
    for e in metrics["estimators"].values():
        e["k"] = 1000
    (folder / "metrics.json").write_text(json.dumps(metrics))
    (folder / "config.json").write_text(json.dumps({"profile": "paper", **cfg.to_dict()}))
    for name in ("per_image.npz", "history.csv", "arrays.npz"):
        shutil.copy(QUICK / quick_id / name, folder / name)
    store.mark_done(folder)
    return cfg.run_id


@pytest.fixture
def paper_root(tmp_path):
    kl = _as_paper_run(tmp_path, "jmvae_kl-a0.1-z64-s1-3d4839bfad", "jmvae_kl", 0.1)
    vae = _as_paper_run(tmp_path, "vae-z64-s1-d81944bcde", "vae", 0.0)
    return tmp_path, kl, vae


def test_no_paper_run_yet_reads_as_not_available(tmp_path):
    runs = paper_protocol.load(tmp_path)
    assert runs == []
    assert paper_protocol.runs_table(runs).iloc[0, 0] == paper_protocol.NOT_YET
    assert paper_protocol.status(runs) == {"done": "0", "total": "39", "which": "none"}
    assert paper_protocol.claims(runs).iloc[0]["verdict"] == tables.NOT_AVAILABLE
    longer = results.load_runs("quick", longer=True)
    assert tables.headline(longer + runs)["label"] == "quick profile, 20 epochs"


def test_the_pages_prefer_the_paper_protocol_and_label_it(paper_root):
    root, kl, vae = paper_root
    paper = paper_protocol.load(root)
    assert sorted(r["run_id"] for r in paper) == sorted([kl, vae])
    longer = results.load_runs("quick", longer=True)
    head = tables.headline(longer + paper)
    assert head["run"] == kl and head["epochs"] == "500"
    assert head["label"] == "paper protocol, seed 1 of 5, CPU"
    conv = tables.convergence_table(longer + paper)
    assert conv.loc[(1000, 500), "protocol"] == "paper protocol, seed 1 of 5, CPU"
    assert conv.loc[(1000, 20), "protocol"] == "quick profile, 20 epochs"
    assert paper_protocol.curve_run(longer, paper)["run_id"] == kl
    table = paper_protocol.runs_table(paper)
    assert list(table.index) == [tables.run_label("jmvae_kl", 0.1), tables.run_label("vae")]
    assert set(table["N"]) == {5000} and set(table["k"]) == {"1000"}
    assert paper_protocol.status(paper)["done"] == "2"


def test_claim1_at_the_paper_protocol_is_paired_and_names_its_seed_spread(paper_root):
    root, kl, _ = paper_root
    paper = paper_protocol.load(root)
    claim = paper_protocol.claims(paper).iloc[0]
    assert claim["verdict"] in {"supported", "not supported", "not resolved"}
    assert "paired on the same test images" in claim["evidence"]
    assert "from the quick profile's 4-seed study" in claim["evidence"]
    assert claim["evidence"].endswith("; seed(s) 1")
    only_kl = [r for r in paper if r["run_id"] == kl]
    assert paper_protocol.claims(only_kl).iloc[0]["verdict"] == tables.NOT_AVAILABLE
    assert "VAE" in paper_protocol.claims(only_kl).iloc[0]["evidence"]


def test_claims_at_the_paper_protocol_are_judged_where_their_runs_exist(paper_root):
    root, _, _ = paper_root
    table = paper_protocol.claims(paper_protocol.load(root))
    assert list(table.index) == [verdicts.CLAIMS[n] for n in (1, 2, 3)]
    two, three = table.iloc[1], table.iloc[2]
    assert two["verdict"] in {"supported", "partly supported", "not supported", "not resolved"}
    assert "label → image coherence" in two["evidence"] and "seed" not in two["evidence"]
    assert three["verdict"] == tables.NOT_AVAILABLE
    assert "JMVAE-zero" in three["evidence"] and "α=0.01" in three["evidence"]
    assert "α=0.1)" not in three["evidence"]  # finished: not named missing
    none = paper_protocol.claims([])
    assert (none["verdict"] == tables.NOT_AVAILABLE).all()
    assert list(none["seeds"]) == ["none"] * 3


def test_a_claim_names_only_the_seeds_all_of_its_models_have(paper_root):
    root, kl, vae = paper_root
    paper = paper_protocol.load(root)
    seed2 = [{**r, "seed": 2} for r in paper]  # both models also have a seed 2
    vae_seed3 = [{**r, "seed": 3} for r in paper if r["run_id"] == vae]  # VAE alone a seed 3
    table = paper_protocol.claims(paper + seed2 + vae_seed3)
    assert table.iloc[0]["seeds"] == "1, 2"  # claim 1 pairs JMVAE-kl with the VAE
    assert table.iloc[0]["evidence"].endswith("; seed(s) 1, 2")
    assert table.iloc[1]["seeds"] == "1, 2" and table.iloc[2]["seeds"] == "none"


def _headline_run(seed: int, mean: float, epochs=500, profile="paper") -> dict:
    return {
        "run_id": f"jmvae_kl-s{seed}-{profile}", "variant": "jmvae_kl", "alpha": 0.1,
        "latent_dim": 64, "seed": seed, "epochs": epochs, "profile": profile, "device": "cpu",
        "estimators": {"marginal": {"mean": mean, "sem": 0.23, "k": 1000}},
    }  # fmt: skip


def test_the_headline_gives_the_mean_and_sd_over_the_seeds_of_its_protocol():
    runs = [_headline_run(s, m) for s, m in [(2, -86.8), (1, -86.7), (3, -86.6)]]
    runs.append(_headline_run(1, -91.5, epochs=20, profile="quick"))  # another protocol
    head = tables.headline(runs)
    assert (head["ours"], head["label"]) == ("-86.70", "paper protocol, seed 1 of 5, CPU")
    assert head["seeds_n"] == "3" and head["seeds_which"] == "1, 2, 3"
    assert (head["seeds_mean"], head["seeds_sd"]) == ("-86.70", "0.10")
    assert head["seeds_gap"] == "+0.16"  # the paper's -86.86
    one = tables.headline(runs[1:2])
    assert one["seeds_n"] == "1" and one["seeds_sd"] == tables.NOT_AVAILABLE


def test_the_binarisation_spread_reads_the_newest_report_and_scales_the_gap(tmp_path):
    assert paper_protocol.binarisation_spread(tmp_path)["sd"] == tables.NOT_AVAILABLE
    for time, sd in [("2026-01-01T00:00:00", 9.0), ("2026-02-01T00:00:00", 0.12)]:
        report = {"run_id": "r", "k": 100, "time": time, "sd_over_draws": sd,
                  "draws": [{"mean": -86.7}, {"mean": -86.5}, {"mean": -86.6}]}  # fmt: skip
        (tmp_path / f"m{sd}-binarisation-spread.json").write_text(json.dumps(report))
    spread = paper_protocol.binarisation_spread(tmp_path)
    assert spread == {"run": "r", "draws": "3", "sd": "0.12", "low": "-86.70",
                      "high": "-86.50", "k": "100"}  # fmt: skip
    head = {"seeds_gap": "+0.26", "seeds_sd": "0.05"}
    assert paper_protocol.gap_in_spreads(head, spread) == {"combined": "0.13", "ratio": "2.0"}
    one_seed = head | {"seeds_sd": tables.NOT_AVAILABLE}
    assert paper_protocol.gap_in_spreads(one_seed, spread)["ratio"] == tables.NOT_AVAILABLE


def test_the_alpha_sweep_waits_for_every_alpha_and_jmvae_zero(paper_root):
    root, _, _ = paper_root  # JMVAE-kl alpha 0.1 and the VAE only
    sweep = paper_protocol.alpha_sweep(paper_protocol.load(root))
    assert sweep["runs"] == [] and sweep["text"]["seeds"] == "none"
    status = sweep["table"].iloc[0, 0]
    assert "α=0.01" in status and "α=1" in status and "JMVAE-zero" in status
    assert "α=0.1)" not in status  # finished: not named missing
    text = sweep["text"]
    assert text["joint_lo"] == text["label_hi"] == text["zero_single"] == tables.NOT_AVAILABLE
    assert text["sd_seeds"] == "1" and text["sd_joint"] == tables.NOT_AVAILABLE  # one seed
    assert paper_protocol.alpha_figure(sweep) is sweep["table"]


def test_the_alpha_sweep_reads_only_the_seeds_every_model_has(tmp_path):
    for quick_id, variant, alpha in [
        ("jmvae_kl-a0.01-z64-s1-fa52ee46cd", "jmvae_kl", 0.01),
        ("jmvae_kl-a0.1-z64-s1-3d4839bfad", "jmvae_kl", 0.1),
        ("jmvae_kl-a1-z64-s1-59aa30b55c", "jmvae_kl", 1.0),
        ("jmvae_zero-z64-s1-c004ad4461", "jmvae_zero", 0.0),
    ]:
        _as_paper_run(tmp_path, quick_id, variant, alpha)
    paper = paper_protocol.load(tmp_path)
    kl = next(r for r in paper if r["variant"] == "jmvae_kl" and r["alpha"] == 0.1)
    shifted = {name: {**e, "mean": e["mean"] + 0.3} for name, e in kl["estimators"].items()}
    seed2 = {**kl, "seed": 2, "run_id": "seed2", "estimators": shifted}  # alpha 0.1 alone
    sweep = paper_protocol.alpha_sweep(paper + [seed2])
    assert sweep["text"]["seeds"] == "1" and "seed2" not in {r["run_id"] for r in sweep["runs"]}
    assert list(sweep["table"].index) == [0.01, 0.1, 1.0]
    quick = tables.alpha_table(results.load_runs("quick"))
    assert (sweep["table"] - quick[sweep["table"].columns]).abs().max().max() < 1e-9
    text = sweep["text"]
    assert text["sd_seeds"] == "2" and text["sd_joint"] == f"{0.3 / 2**0.5:.2f}"
    assert (text["lo"], text["hi"]) == ("0.01", "1")
    assert text["label_hi"] == f"{quick.loc[1.0, 'pseudo_conditional']:.2f}"
    zero = tables.summary(results.load_runs("quick")).query("variant == 'jmvae_zero'")
    single = zero.set_index("estimator").loc["pseudo_marginal", "mean"]
    assert text["zero_single"] == f"{single:.2f}"
    assert paper_protocol.alpha_figure(sweep).axes  # a figure once the sweep is complete
    assert set(paper_protocol.alpha_sweep([])["text"]) == set(text)  # the same glue names


def test_generation_at_the_paper_protocol_shows_what_has_finished(paper_root):
    root, kl, _ = paper_root  # JMVAE-kl alpha 0.1 and the VAE, which has no label -> image
    generated = paper_protocol.generation(paper_protocol.load(root))
    assert generated["figures"]["kl"].axes
    for key in ("zero", "cmma", "cvae"):
        status = generated["figures"][key].iloc[0, 0]
        assert status.startswith(mnist_report.GENERATORS[key]) and "not finished" in status
    assert list(generated["table"].index) == [tables.run_label("jmvae_kl", 0.1)]
    judged = json.loads((QUICK / "jmvae_kl-a0.1-z64-s1-3d4839bfad" / "metrics.json").read_text())
    coherence = judged["judged_coherence"]
    assert generated["text"]["kl"] == f"{coherence['coherence']:.3f} ± {coherence['sem']:.3f}"
    assert generated["text"]["cvae"] == tables.NOT_AVAILABLE
    none = paper_protocol.generation([])
    assert none["table"].iloc[0, 0].startswith("no label-conditioned run")
    assert set(none["text"].values()) == {none["table"].iloc[0, 0]}


def test_the_latent_space_at_the_paper_protocol_shows_the_2d_runs_finished(paper_root):
    root, _, _ = paper_root  # latent 64 only: nothing to show yet
    none = paper_protocol.latent_space(paper_protocol.load(root))
    assert none["which"] == "none" and none["figure"].iloc[0, 0].startswith("no 2-D run")
    _as_paper_run(root, "jmvae_kl-a0.1-z2-s1-372612a526", "jmvae_kl", 0.1, latent_dim=2)
    shown = paper_protocol.latent_space(paper_protocol.load(root))
    assert shown["which"] == tables.run_label("jmvae_kl", 0.1)
    assert list(shown["table"].index) == ["JMVAE-kl: q(z|x,w)", "JMVAE-kl: q(z|x)"]
    quick = latent.latent_separation(latent.latent_runs(results.load_runs("quick")))
    assert shown["table"].equals(quick.loc[shown["table"].index])
    assert len(shown["figure"].axes) >= 2
