"""The claims' verdicts: paired differences, their standard errors, and rules that can flip."""

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

from jmvae_core import store
from jmvae_core.pages import results, verdicts

ROOT = Path(__file__).resolve().parent.parent
N = 400


def _run(tmp_path, variant, alpha, values: dict, seed=1, test_hash="h", accuracy=None, judged=None):
    folder = tmp_path / f"{variant}-{alpha}-{seed}-{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v, np.float32) for k, v in values.items()})
    (folder / store.PER_IMAGE).write_bytes(buffer.getvalue())
    run = {
        "variant": variant, "alpha": alpha or None, "latent_dim": 64, "seed": seed,
        "test_hash": test_hash, "path": str(folder), "accuracy": accuracy or {},
        "estimators": {k: {"mean": float(np.mean(v)), "n_test": len(v), "k": 10,
                           "sem": float(np.std(v, ddof=1) / math.sqrt(len(v)))}
                       for k, v in values.items()},
    }  # fmt: skip
    if judged is not None:
        sem = math.sqrt(judged * (1 - judged) / 10000)
        run["judged_coherence"] = {"coherence": judged, "sem": sem, "chance": 0.1, "n": 10000}
    return run


@pytest.fixture
def base_images():
    """Per-image log-likelihoods with a large spread between images (like MNIST's)."""
    return np.random.default_rng(0).normal(-90.0, 25.0, N)


def test_pairing_removes_the_spread_between_images(tmp_path, base_images):
    noise = np.random.default_rng(1).normal(0, 0.1, N)
    a = _run(tmp_path, "jmvae_kl", 0.1, {"marginal": base_images + 1.0 + noise})
    b = _run(tmp_path, "vae", 0.0, {"marginal": base_images})
    d = verdicts.difference([a, b], ("jmvae_kl", 0.1), ("vae", 0.0), "marginal", sd=0.0)
    assert d.paired and d.mean == pytest.approx(1.0, abs=0.02)
    assert d.se == pytest.approx(0.1 / math.sqrt(N), rel=0.15)  # not 25 * sqrt(2 / N)
    b_other = {**b, "test_hash": "another test set"}
    d = verdicts.difference([a, b_other], ("jmvae_kl", 0.1), ("vae", 0.0), "marginal", sd=0.0)
    assert not d.paired and d.se == pytest.approx(25 * math.sqrt(2 / N), rel=0.15)


def test_the_seed_spread_enters_single_seed_differences(tmp_path, base_images):
    a = _run(tmp_path, "jmvae_kl", 0.1, {"marginal": base_images + 1.0})
    b = _run(tmp_path, "vae", 0.0, {"marginal": base_images})
    d = verdicts.difference([a, b], ("jmvae_kl", 0.1), ("vae", 0.0), "marginal", sd=0.3)
    assert d.se == pytest.approx(math.sqrt(2) * 0.3, rel=1e-3)
    d = verdicts.difference([a, b], ("jmvae_kl", 0.1), ("vae", 0.0), "marginal")
    assert "from the quick profile's 4-seed study" in d.text()
    study, _ = results.load_benchmark(verdicts.SEED_STUDY)
    sd, source = verdicts.seed_sd([a, b], "jmvae_kl", 0.1, "marginal")
    fp32 = [r["marginal"] for r in study["runs"] if r["precision"] == "fp32"]
    assert sd == pytest.approx(np.std(fp32, ddof=1)) and "seed study" in source


def test_three_seeds_use_the_spread_of_their_own_differences(tmp_path, base_images):
    runs = []
    for seed, shift in zip((1, 2, 3), (0.5, 1.0, 1.5), strict=True):
        runs.append(_run(tmp_path, "jmvae_kl", 0.1, {"marginal": base_images + shift}, seed))
        runs.append(_run(tmp_path, "vae", 0.0, {"marginal": base_images}, seed))
    d = verdicts.difference(runs, ("jmvae_kl", 0.1), ("vae", 0.0), "marginal")
    assert d.mean == pytest.approx(1.0, abs=1e-4)
    assert d.se == pytest.approx(0.5 / math.sqrt(3), rel=1e-3)
    assert d.source == "the differences of seeds 1, 2, 3" and d.source in d.text()


def _claims_runs(tmp_path, base, kl_gain=3.0, collapse=5.0, trade=2.0, coherence=0.95):
    """A synthetic study whose differences are set by the arguments (nats)."""

    def v(shift):
        return base + shift

    def est(m, j, pm, pc):
        return {"marginal": v(m), "joint": v(j), "conditional": v(m),
                "pseudo_marginal": v(pm), "pseudo_conditional": v(pc)}  # fmt: skip

    acc = {"w_from_x": 0.97, "w_from_xw": 0.98}
    return [
        _run(tmp_path, "vae", 0.0, {"marginal": v(0.0)}),
        _run(tmp_path, "cvae", 0.0, {"conditional": v(0.0)}, judged=0.97),
        _run(tmp_path, "jmvae_zero", 0.0, est(0, 0, -collapse, -collapse), accuracy=acc),
        _run(tmp_path, "jmvae_kl", 0.01, est(kl_gain, trade, 0, 0), accuracy=acc),
        _run(
            tmp_path, "jmvae_kl", 0.1, est(kl_gain, trade / 2, 0, 0), accuracy=acc, judged=coherence
        ),
        _run(tmp_path, "jmvae_kl", 1.0, est(kl_gain, 0.0, 0, 0), accuracy=acc),
    ]


def _verdict(runs, number):
    table = verdicts.claims(runs)
    return table["verdict"].iloc[number - 1]


def test_each_verdict_flips_when_its_difference_shrinks_below_the_threshold(tmp_path, base_images):
    runs = _claims_runs(tmp_path, base_images)
    assert _verdict(runs, 1) == "supported"
    assert _verdict(runs, 2) == "supported"
    assert _verdict(runs, 3) == "supported"
    sd = verdicts.seed_sd(runs, "jmvae_kl", 0.1, "marginal")[0]
    # a JMVAE-kl below the VAE by the margin: the 2-SE interval straddles -0.5 nats
    runs = _claims_runs(tmp_path, base_images, kl_gain=-verdicts.MATCH_MARGIN)
    assert _verdict(runs, 1) == "not resolved"
    runs = _claims_runs(tmp_path, base_images, kl_gain=-verdicts.MATCH_MARGIN - 3 * sd * 2)
    assert _verdict(runs, 1) == "not supported"
    # single-input gain shrunk to the 1-nat margin: no longer established
    runs = _claims_runs(tmp_path, base_images, collapse=verdicts.COLLAPSE_MARGIN)
    assert _verdict(runs, 3) == "not resolved"
    # no trade-off in alpha: part of the claim refuted
    runs = _claims_runs(tmp_path, base_images, trade=-2.0)
    assert _verdict(runs, 3) == "partly supported"
    # label -> image coherence below 0.9 by many SE
    runs = _claims_runs(tmp_path, base_images, coherence=0.6)
    assert _verdict(runs, 2) == "partly supported"
    runs = _claims_runs(tmp_path, base_images, coherence=0.1)
    assert _verdict(runs, 2) == "not supported"


def test_the_committed_verdicts_follow_from_the_committed_per_image_estimates():
    """Claims 1 and 3 recomputed here with plain numpy from the stored per-image estimates and
    the stated rule, against the verdicts the book shows."""
    runs = results.load_runs("quick")
    by = {
        (r["variant"], r["alpha"] or 0.0): r
        for r in runs
        if r["latent_dim"] == 64 and r["epochs"] == 12
    }
    study = json.loads((ROOT / "benchmarks/results" / f"{verdicts.SEED_STUDY}.json").read_text())
    sd = np.std([r["marginal"] for r in study["runs"] if r["precision"] == "fp32"], ddof=1)

    def diff(a, b, est):
        d = results.load_per_image(by[a])[est] - results.load_per_image(by[b])[est]
        return d.mean(), math.sqrt(d.var(ddof=1) / len(d) + 2 * sd**2)

    def call(d, se, margin):
        return "yes" if d - 2 * se > margin else "no" if d + 2 * se < margin else "not resolved"

    d, se = diff(("jmvae_kl", 0.1), ("vae", 0.0), "marginal")
    expect1 = {"yes": "supported", "no": "not supported"}.get(call(d, se, -0.5), "not resolved")
    parts = [
        call(*diff(("jmvae_kl", 0.1), ("jmvae_zero", 0.0), e), 1.0)
        for e in ("pseudo_marginal", "pseudo_conditional")
    ]
    parts.append(call(*diff(("jmvae_kl", 0.01), ("jmvae_kl", 1.0), "joint"), 0.0))
    better = [
        call(*diff(("jmvae_kl", 0.1), ("jmvae_zero", 0.0), e), 0.0)
        for e in ("pseudo_marginal", "pseudo_conditional")
    ]
    expect3 = ("supported" if parts == ["yes"] * 3 else "partly supported"
               if better == ["yes"] * 2 and "no" in parts else "not supported"
               if "no" in better else "not resolved")  # fmt: skip
    table = verdicts.claims(runs)
    assert list(table["verdict"].iloc[[0, 2]]) == [expect1, expect3]
    shown = json.dumps(json.loads((ROOT / "notebooks" / "claims.ipynb").read_text())["cells"])
    for verdict in table["verdict"]:
        assert verdict in shown
