"""What the MNIST result chapters show, one call per notebook cell: figures and values built
from the stored runs (tables.py holds the tables, verdicts.py the claims)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from jmvae_core import models
from jmvae_core.models.declaration import ESTIMATOR_LABELS
from jmvae_core.pages import plots, results, tables, verdicts

# label -> image grids, in the order the generation chapter shows them
GENERATORS = {"kl": "JMVAE-kl (α=0.1)", "zero": "JMVAE-zero", "cmma": "CMMA", "cvae": "CVAE"}


def glue_figures(figures: dict, prefix: str) -> None:
    """Glue each figure as <prefix>_<key> and close it, so it shows only where a page places it
    (a table glued in a figure's place, e.g. a status row until its runs exist, is glued as is)."""
    from myst_nb import glue

    for key, fig in figures.items():
        glue(f"{prefix}_{key}", fig, display=False)
        if isinstance(fig, plt.Figure):
            plt.close(fig)


def _first_seed(runs: list[dict], latent_dim: int = 64) -> dict[str, dict]:
    """Model label -> its run of the first seed at `latent_dim`."""
    first = min(r["seed"] for r in runs)
    return {tables.run_label(r["variant"], r["alpha"] or 0.0): r for r in runs
            if r["latent_dim"] == latent_dim and r["seed"] == first}  # fmt: skip


def label_to_image_figures(runs: list[dict], profile: str) -> dict:
    """One grid per label-conditioned model: a row per requested digit, Bernoulli means."""
    pick = _first_seed(runs)
    return {
        key: plots.image_grid(results.load_arrays(pick[name])["label_to_image"],
                              f"{name}: label → image ({profile} profile)", row_labels=range(10))
        for key, name in GENERATORS.items() if name in pick
    }  # fmt: skip


def joint_samples(runs: list[dict], profile: str, n: int = 40):
    """z ~ p(z) of JMVAE-kl (α = 0.1) decoded to images -> (figure with 10 per row, the most
    probable label of each image in the same layout)."""
    arrays = results.load_arrays(_first_seed(runs)[GENERATORS["kl"]])
    rows = n // 10
    images, labels = arrays["joint_images"][:n], arrays["joint_labels"][:n].reshape(rows, 10)
    title = f"JMVAE-kl (α=0.1): z ~ p(z) ({profile} profile)"
    return {"joint": plots.image_grid(images.reshape(rows, 10, -1), title)}, labels


def judge_values(runs: list[dict]) -> dict:
    """Text values the generation chapter cites: the judge's accuracy and the coherence of
    JMVAE-kl (α = 0.1) and of the CVAE, each ± its standard error."""
    pick = _first_seed(runs)

    def coherence(name):
        c = pick[name].get("judged_coherence") if name in pick else None
        return "not available" if c is None else f"{c['coherence']:.3f} ± {c['sem']:.3f}"

    judged = [r["judged_coherence"] for r in pick.values() if "judged_coherence" in r]
    return {
        "accuracy": f"{judged[0]['judge_accuracy']:.4f}" if judged else "not available",
        "kl": coherence(GENERATORS["kl"]),
        "zero": coherence(GENERATORS["zero"]),
        "cvae": coherence(GENERATORS["cvae"]),
        "cmma": coherence(GENERATORS["cmma"]),
    }


def zero_reference(runs: list[dict]) -> dict:
    """JMVAE-zero's mean of each estimator (latent 64): the alpha figure's reference lines."""
    s = tables.summary(runs)
    s = s[s["variant"] == "jmvae_zero"]
    return dict(zip(s["estimator"], s["mean"], strict=True))


ALPHA_VALUES = ("lo", "hi", "joint_lo", "joint_hi", "single_lo", "single_hi", "label_lo",
                "label_hi", "zero_single")  # fmt: skip


def alpha_values(runs: list[dict]) -> dict:
    """Text values the alpha chapter cites: both-input and single-input log p(x) and the
    label-only log p(x|w) (through q(z|w)) of JMVAE-kl at the smallest and largest alpha, and
    JMVAE-zero's single-input log p(x), under the names ALPHA_VALUES."""
    table = tables.alpha_table(runs)
    lo, hi = table.index.min(), table.index.max()
    zero = zero_reference(runs)
    fmt = lambda v: f"{v:.2f}" if v is not None and np.isfinite(v) else "not available"  # noqa: E731
    return {
        "lo": f"{lo:g}", "hi": f"{hi:g}",
        "joint_lo": fmt(table.loc[lo, "joint"]), "joint_hi": fmt(table.loc[hi, "joint"]),
        "single_lo": fmt(table.loc[lo, "pseudo_marginal"]),
        "single_hi": fmt(table.loc[hi, "pseudo_marginal"]),
        "label_lo": fmt(table.loc[lo, "pseudo_conditional"]),
        "label_hi": fmt(table.loc[hi, "pseudo_conditional"]),
        "zero_single": fmt(zero.get("pseudo_marginal")),
    }  # fmt: skip


# JMVAE's successors against JMVAE-kl (the chapter "JMVAE among its successors")
SUCCESSOR_BASE = ("jmvae_kl", 0.1)


def _compared(runs: list[dict]) -> dict[str, dict]:
    """Model label -> run (latent 64, first seed): JMVAE-kl (α = 0.1), then each successor."""
    from jmvae_core.config import SUCCESSORS

    pick = _first_seed(runs)
    keys = [tables.run_label(*SUCCESSOR_BASE)] + [tables.run_label(v) for v in SUCCESSORS]
    return {k: pick[k] for k in keys if k in pick}


def successors_likelihoods(runs: list[dict], estimators=None) -> pd.DataFrame:
    """The estimators (all, or e.g. tables.BOTH_INPUTS) of each compared model, 'mean ± SE'
    (nats per test image)."""
    return tables.table1(list(_compared(runs).values()), estimators=estimators)


def _median_epoch_s(run: dict) -> float:
    return float(np.median(results.load_history(run)["time_s"]))


def _probe_cell(run: dict) -> str:
    """'accuracy ± SE' of a run's latent linear probe; '—' where the model has no image-only
    encoder; 'not measured' for a run without probe.json."""
    if "latent_probe" not in run:
        return "not measured"
    p = run["latent_probe"]
    return "—" if p is None else f"{p['accuracy']:.3f} ± {p['accuracy_se']:.3f}"


def successors_generation(runs: list[dict]) -> pd.DataFrame:
    """Both directions, the latent probe and training time per compared model: label -> image
    coherence read by the digit judge, image -> label accuracy (argmax p(w|z) at the mean of
    q(z|x)), the latent linear probe's test accuracy (jmvae_core.probe), and the median seconds
    per training epoch recorded in the run's history."""

    rows = {}
    for name, r in _compared(runs).items():
        j = r.get("judged_coherence")
        rows[name] = {
            "label → image (judge)": "—" if j is None else f"{j['coherence']:.3f} ± {j['sem']:.3f}",
            "image → label accuracy": tables._fmt((r["accuracy"] or {}).get("w_from_x")),
            "latent linear probe": _probe_cell(r),
            "s per epoch (median)": round(_median_epoch_s(r), 1),
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model"
    return table


def _proportion_difference(a: dict, b: dict, key: str) -> tuple[float, float] | None:
    """a - b of a judged coherence ({'coherence', 'sem'}) or an accuracy over n test images."""
    if key == "coherence":
        ja, jb = a.get("judged_coherence"), b.get("judged_coherence")
        if ja is None or jb is None:
            return None
        return ja["coherence"] - jb["coherence"], float(np.hypot(ja["sem"], jb["sem"]))
    if key == "probe":
        pa, pb = ((r.get("latent_probe") or {}).get("accuracy") for r in (a, b))
    else:
        pa, pb = ((r["accuracy"] or {}).get("w_from_x") for r in (a, b))
    if pa is None or pb is None:
        return None
    n = a["estimators"]["marginal"]["n_test"]
    return pa - pb, float(np.sqrt((pa * (1 - pa) + pb * (1 - pb)) / n))


def successors_comparisons(runs: list[dict]) -> pd.DataFrame:
    """Each successor minus JMVAE-kl (α = 0.1): likelihoods paired on the same test images
    with the seed spread (verdicts.difference), coherence and accuracy as differences of
    proportions; each decided at verdicts.THRESHOLD_SE standard errors."""
    compared = _compared(runs)
    base_label = tables.run_label(*SUCCESSOR_BASE)
    base = compared.get(base_label)
    rows = []
    for name, r in compared.items():
        if base is None or name == base_label:
            continue
        found = {}
        for est in ("joint", "marginal", "pseudo_marginal", "pseudo_conditional"):
            d = verdicts.difference(runs, (r["variant"], 0.0), SUCCESSOR_BASE, est)
            found[ESTIMATOR_LABELS[est]] = (d.mean, d.se)
        for key, label in (("coherence", "label → image coherence"),
                           ("accuracy", "image → label accuracy"),
                           ("probe", "latent linear probe")):  # fmt: skip
            diff = _proportion_difference(r, base, key)
            if diff is not None:
                found[label] = diff
        for quantity, (mean, se) in found.items():
            call = verdicts.above(verdicts.Difference(mean, se, se, 0.0, True, 0), 0.0)
            rows.append({"model": name, "quantity": quantity,
                         "Δ vs JMVAE-kl": f"{mean:+.3f} ± {se:.3f}" if abs(mean) < 1
                         else f"{mean:+.2f} ± {se:.2f}",
                         "higher than JMVAE-kl": call})  # fmt: skip
    if not rows:  # a profile without successor runs (smoke)
        rows = [{"model": "—", "quantity": "no successor runs in this profile",
                 "Δ vs JMVAE-kl": "—", "higher than JMVAE-kl": "—"}]  # fmt: skip
    return pd.DataFrame(rows).set_index(["model", "quantity"])


def successors_values(runs: list[dict]) -> dict:
    """Text values the successors chapter cites: how many successors ran, and per successor
    its log p(x), judged coherence and latent-probe accuracy."""
    from jmvae_core.config import SUCCESSORS

    compared = _compared(runs)
    values = {"n": str(len(compared) - (tables.run_label(*SUCCESSOR_BASE) in compared))}
    for v in (SUCCESSOR_BASE[0], *SUCCESSORS):
        name = tables.run_label(*SUCCESSOR_BASE) if v == SUCCESSOR_BASE[0] else tables.run_label(v)
        r = compared.get(name)
        est = r["estimators"]["marginal"] if r else None
        judged = r.get("judged_coherence") if r else None
        values[f"{v}_marginal"] = f"{est['mean']:.2f}" if est else "not available"
        values[f"{v}_coherence"] = f"{judged['coherence']:.3f}" if judged else "not available"
        probe = r.get("latent_probe") if r else None
        values[f"{v}_probe"] = f"{probe['accuracy']:.3f}" if probe else "not measured"
    return values


def probe_table(runs: list[dict]) -> pd.DataFrame:
    """The latent linear probe of every model at latent 64 (first seed, the profile's epochs),
    paper models and successors: test accuracy ± SE, and the probe's training accuracy."""
    rank = {v: i for i, v in enumerate(models.names())}
    picked = sorted(_first_seed(runs).items(), key=lambda kv: (rank[kv[1]["variant"]],
                                                              kv[1]["alpha"] or 0.0))  # fmt: skip
    rows = {}
    for name, r in picked:
        p = r.get("latent_probe")
        rows[name] = {
            "probe accuracy (test)": _probe_cell(r),
            "probe accuracy (training)": "—" if p is None else f"{p['train_accuracy']:.3f}",
        }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model"
    return table


def successors_speed(bench: dict) -> pd.DataFrame:
    """benchmarks/successors_speed.py's report: per model its median seconds per training step
    and the ratios of medians to JMVAE-kl's (wall and CPU time), models timed in turns."""
    table = pd.DataFrame({
        "ms per step (median)": {n: 1000 * float(np.median(v))
                                 for n, v in bench["wall_s_per_step"].items()},
        "÷ JMVAE-kl (wall)": bench["ratio_wall"],
        "÷ JMVAE-kl (CPU)": bench["ratio_cpu"],
    }).round(2)  # fmt: skip
    table.index.name = "model"
    return table
