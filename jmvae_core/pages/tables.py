"""Pure functions: run metrics -> DataFrames for the paper's tables (the claims: verdicts.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from jmvae_core import models
from jmvae_core.models.declaration import ESTIMATOR_LABELS, ESTIMATOR_ORDER

NOT_AVAILABLE = "not available"

# The only number of the paper's Table 1 that its text gives (book/model.md).
PAPER = {
    ("jmvae_kl", 0.1, "marginal"): -86.86,
}
PAPER_SOURCE = (
    "Suzuki, Nakayama & Matsuo (2016), arXiv:1611.01891, Table 1: JMVAE on MNIST, log p(x) "
    "with proposal q(z|x,w) and k = 1000; compared here with JMVAE-kl, alpha = 0.1."
)


def protocol_label(run: dict) -> str:
    """How the book names the protocol of a run: 'paper protocol, seed 1 of 5, CPU' or
    'quick profile, 20 epochs'."""
    from jmvae_core.config import PROFILE_SEEDS

    if run["profile"] != "paper":
        return f"{run['profile']} profile, {run['epochs']} epochs"
    seeds = len(PROFILE_SEEDS["paper"])
    return f"paper protocol, seed {run['seed']} of {seeds}, {run['device'].upper()}"


def run_label(variant: str, alpha=None) -> str:
    label = models.label(variant)
    return f"{label} (α={alpha:g})" if variant == "jmvae_kl" else label


def long_table(runs: list[dict]) -> pd.DataFrame:
    """One row per (run, estimator): variant, alpha, latent_dim, seed, estimator, mean, sem."""
    rows = []
    for r in runs:
        for name, est in r["estimators"].items():
            rows.append({
                "variant": r["variant"], "alpha": r["alpha"] or 0.0, "latent_dim": r["latent_dim"],
                "seed": r["seed"], "epochs": r["epochs"], "estimator": name,
                "mean": est["mean"], "sem": est["sem"], "k": est["k"], "n_test": est["n_test"],
            })  # fmt: skip
    return pd.DataFrame(rows)


def summary(runs: list[dict], latent_dim: int = 64) -> pd.DataFrame:
    """Per (variant, alpha, estimator): mean over seeds, sd over seeds, mean test-set SE, seeds."""
    df = long_table(runs)
    df = df[df["latent_dim"] == latent_dim]
    g = df.groupby(["variant", "alpha", "estimator"], sort=False)
    out = g.agg(
        mean=("mean", "mean"), sd=("mean", "std"), sem=("sem", "mean"), seeds=("seed", "nunique")
    )
    return out.reset_index()


def _order(df: pd.DataFrame) -> pd.DataFrame:
    rank = {v: i for i, v in enumerate(models.names())}
    return df.assign(_r=df["variant"].map(rank)).sort_values(["_r", "alpha"]).drop(columns="_r")


BOTH_INPUTS = ["joint", "marginal", "conditional"]  # proposal q(z|x,w)
SINGLE_INPUT = ["pseudo_marginal", "pseudo_conditional"]  # proposals q(z|x), q(z|w)


def table1(runs: list[dict], latent_dim: int = 64, estimators=None) -> pd.DataFrame:
    """Table 1 of the study: rows = models, columns = estimators (all, or `estimators`, e.g.
    BOTH_INPUTS), 'mean ± spread' strings. Models without any of them are left out.

    The spread is the sd over seeds when there are several (the cell then names how many: an
    sd over two seeds is a rough figure), else the test-set standard error.
    """
    s = _order(summary(runs, latent_dim))
    spread = np.where(s["seeds"] > 1, s["sd"], s["sem"])
    seeds = [f" ({n} seeds)" if n > 1 else "" for n in s["seeds"]]
    s = s.assign(
        model=[run_label(v, a) for v, a in zip(s["variant"], s["alpha"], strict=True)],
        cell=[f"{m:.2f} ± {e:.2f}{n}" for m, e, n in zip(s["mean"], spread, seeds, strict=True)],
    )
    wide = s.pivot(index="model", columns="estimator", values="cell")
    models = list(dict.fromkeys(s["model"]))
    cols = [c for c in estimators or ESTIMATOR_ORDER if c in wide.columns]
    wide = wide.loc[models, cols].dropna(how="all").fillna("—")
    return wide.rename(columns=ESTIMATOR_LABELS)


def paper_table(runs: list[dict], latent_dim: int = 64) -> pd.DataFrame:
    """The paper's values in table1's layout: known cells filled, the others 'not available'."""
    s = _order(summary(runs, latent_dim))
    models = list(
        dict.fromkeys(run_label(v, a) for v, a in zip(s["variant"], s["alpha"], strict=True))
    )
    cols = [c for c in ESTIMATOR_ORDER if c in set(s["estimator"])]
    out = pd.DataFrame(NOT_AVAILABLE, index=models, columns=cols)
    for (variant, alpha, est), value in PAPER.items():
        label = run_label(variant, alpha)
        if label in out.index and est in out.columns:
            out.loc[label, est] = f"{value:.2f}"
    return out.rename(columns=ESTIMATOR_LABELS)


def paper_gap(runs: list[dict]) -> dict:
    """Our value, the paper's, and the difference for every cell the paper gives."""
    s = summary(runs)
    out = {}
    for (variant, alpha, est), value in PAPER.items():
        row = s[(s["variant"] == variant) & np.isclose(s["alpha"], alpha) & (s["estimator"] == est)]
        if len(row):
            ours = float(row["mean"].iloc[0])
            out[f"{variant}_{alpha:g}_{est}"] = {"ours": ours, "paper": value, "gap": ours - value}
    return out


def alpha_table(runs: list[dict]) -> pd.DataFrame:
    """JMVAE-kl estimates against alpha (latent 64): rows alpha, columns estimators (means)."""
    s = summary(runs)
    s = s[s["variant"] == "jmvae_kl"]
    wide = s.pivot(index="alpha", columns="estimator", values="mean").sort_index()
    return wide[[c for c in ESTIMATOR_ORDER if c in wide.columns]]


def caption(runs: list[dict], profile: str) -> str:
    """Which profile made these numbers, with its epochs, k, seeds and test-set size."""
    from jmvae_core.config import PROFILE_NOTES

    def join(values):
        return ", ".join(str(v) for v in sorted(set(values)))

    est = [e for r in runs for e in r["estimators"].values()]
    return (
        f"{profile} profile ({PROFILE_NOTES[profile]}): {join(r['epochs'] for r in runs)} epochs, "
        f"k = {join(e['k'] for e in est)}, seeds {join(r['seed'] for r in runs)}, "
        f"{join(e['n_test'] for e in est)} test images"
    )


def convergence_table(runs: list[dict], variant="jmvae_kl", alpha=0.1) -> pd.DataFrame:
    """log p(x) of one model (latent 64, its first seed) trained for different numbers of
    epochs, one row per (epochs, k), so that each change of epochs is read at a fixed k and each
    change of k at fixed epochs. Pass load_runs(profile, longer=True), and the paper
    profile's runs beside them (each row names its protocol)."""
    rows = [
        {"epochs": r["epochs"], "k": r["estimators"]["marginal"]["k"],
         "log p(x)": round(r["estimators"]["marginal"]["mean"], 2),
         "± SE": round(r["estimators"]["marginal"]["sem"], 2),
         "final training loss": round(r["final_loss"], 2) if "final_loss" in r else "not recorded",
         "protocol": protocol_label(r), "run": r["run_id"]}
        for r in runs
        if r["variant"] == variant and np.isclose(r["alpha"] or 0.0, alpha)
        and r["latent_dim"] == 64 and r["seed"] == min(x["seed"] for x in runs)
    ]  # fmt: skip
    return pd.DataFrame(rows).sort_values(["k", "epochs"]).set_index(["k", "epochs"])


def judged_coherence_table(runs: list[dict], latent_dim: int = 64) -> pd.DataFrame:
    """Both directions per model (its first seed): label -> image coherence read by the
    independent digit judge (± binomial SE, chance 0.1), the model's own self-consistency
    (its p(w|z) labelling its images) and image -> label accuracy, where they exist."""
    first = min(r["seed"] for r in runs)
    rows = []
    for r in runs:
        if r["latent_dim"] != latent_dim or r["seed"] != first or "judged_coherence" not in r:
            continue
        j, acc = r["judged_coherence"], r["accuracy"] or {}
        rows.append({
            "variant": r["variant"], "alpha": r["alpha"] or 0.0,
            "label → image (judge)": f"{j['coherence']:.3f} ± {j['sem']:.3f}",
            "label → image (self-consistency)": _fmt(acc.get("w_to_x_coherence")),
            "image → label accuracy": _fmt(acc.get("w_from_x")),
        })  # fmt: skip
    df = _order(pd.DataFrame(rows))
    df.index = [run_label(v, a) for v, a in zip(df["variant"], df["alpha"], strict=True)]
    df.index.name = "model"
    return df.drop(columns=["variant", "alpha"])


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}"


PAPER_K = 1000  # the paper's importance samples for Table 1
SEEDS = ("n", "which", "mean", "sd", "gap")  # headline(): the seeds of its run's protocol


def headline(runs: list[dict], variant="jmvae_kl", alpha=0.1) -> dict:
    """The paper's one MNIST number against ours at the same k, as text: among the runs of the
    model (latent 64) evaluated with k = PAPER_K, the one trained longest (pass
    load_runs(profile, longer=True) and the paper profile's runs: a 500-epoch run of the paper's
    protocol wins), with its protocol's label; and the mean and sd (ddof 1) over the seeds of
    that run's protocol and length ("not available" for the sd of one seed); every value "not
    available" when no run used that k."""
    (paper,) = [v for key, v in PAPER.items() if key == (variant, alpha, "marginal")]
    same_k = [r for r in runs if r["variant"] == variant and r["latent_dim"] == 64
              and np.isclose(r["alpha"] or 0.0, alpha)
              and r["estimators"]["marginal"]["k"] == PAPER_K]  # fmt: skip
    if not same_k:
        keys = ("ours", "sem", "gap", "epochs", "run", "label") + tuple(f"seeds_{k}" for k in SEEDS)
        return dict.fromkeys(keys, NOT_AVAILABLE)
    r = max(same_k, key=lambda r: (r["epochs"], -r["seed"]))
    m = r["estimators"]["marginal"]
    seeds = sorted(
        (x["seed"], x["estimators"]["marginal"]["mean"])
        for x in same_k
        if (x["profile"], x["epochs"]) == (r["profile"], r["epochs"])
    )
    means = np.array([v for _, v in seeds])
    return {
        "seeds_n": str(len(seeds)),
        "seeds_which": ", ".join(str(s) for s, _ in seeds),
        "seeds_mean": f"{means.mean():.2f}",
        "seeds_sd": f"{means.std(ddof=1):.2f}" if len(seeds) > 1 else NOT_AVAILABLE,
        "seeds_gap": f"{means.mean() - paper:+.2f}",
        "ours": f"{m['mean']:.2f}",
        "sem": f"{m['sem']:.2f}",
        "gap": f"{m['mean'] - paper:+.2f}",
        "epochs": str(r["epochs"]),
        "run": r["run_id"],
        "label": protocol_label(r),
    }


def glue_all(values: dict, prefix: str) -> None:
    """Glue every value as <prefix>_<key> (myst-nb; call inside an executing notebook)."""
    from myst_nb import glue

    for key, value in values.items():
        glue(f"{prefix}_{key}", value, display=False)
