"""The paper's protocol beside the quick profile: the finished runs of the `paper` profile
(500 epochs with a 200-epoch warm-up, k = 1000, N = 5000, five seeds; made a few at a time),
how the book labels them, and what the Table 1, claims and landing pages read from them.

The two profiles are never mixed in one comparison: a page shows the paper-protocol numbers
beside the quick profile's, each labelled with the protocol that made it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from jmvae_core import store
from jmvae_core.config import ALPHAS, plan
from jmvae_core.pages import latent, mnist_report, plots, results, tables, verdicts

PROFILE = "paper"
NOT_YET = "no run of the paper's protocol has finished yet"


def load(root: Path | None = None) -> list[dict]:
    """The finished runs of the paper profile's plan (perhaps none)."""
    return results.load_runs(PROFILE, root, complete=False)


def beside(profile: str, root: Path | None = None) -> list[dict]:
    """The paper-protocol runs a page of `profile` reads beside its own: none when the page's
    profile is the paper's (they are then its own runs)."""
    return [] if profile == PROFILE else load(root)


def estimates_table(runs: list[dict]) -> pd.DataFrame:
    """Table 1's layout for the paper-protocol runs: models x estimators, mean ± SE (± sd over
    seeds once a model has several)."""
    if not runs:
        return _status(NOT_YET)
    return tables.table1(runs)


def runs_table(runs: list[dict]) -> pd.DataFrame:
    """One row per finished paper-profile run: schedule, k and N, training time, device, commit."""
    if not runs:
        return _status(NOT_YET)
    rows = []
    for r in sorted(runs, key=lambda r: (r["latent_dim"], r["seed"], r["run_id"])):
        n_prior = store.read_json(Path(r["path"]) / "config.json")["eval"]["n_prior"]
        k = ", ".join(map(str, sorted({e["k"] for e in r["estimators"].values()})))
        rows.append({
            "model": tables.run_label(r["variant"], r["alpha"]), "seed": r["seed"],
            "epochs": r["epochs"], "k": k, "N": n_prior,
            "training (h)": round(r["train_time_s"] / 3600, 2), "device": r["device"],
            "commit": str(r.get("git_commit", "not recorded"))[:10], "run": r["run_id"],
        })  # fmt: skip
    return pd.DataFrame(rows).set_index("model")


def status(runs: list[dict]) -> dict:
    """Glue text for the pages: how many of the plan's runs exist, and which."""
    total = len(plan(PROFILE))
    names = sorted({f"{tables.run_label(r['variant'], r['alpha'])} seed {r['seed']}" for r in runs})
    return {
        "done": str(len(runs)),
        "total": str(total),
        "which": ", ".join(names) if names else "none",
    }


def curve_run(quick_runs: list[dict], paper_runs: list[dict], alpha: float = 0.1) -> dict:
    """The JMVAE-kl run whose learning curve the book shows: the paper protocol's when it
    exists, else the quick profile's (latent 64, first seed)."""
    for runs in (paper_runs, quick_runs):
        kl = verdicts.select_runs(runs, "jmvae_kl", alpha)
        if kl:
            return min(kl, key=lambda r: r["seed"])
    raise ValueError("no JMVAE-kl run to draw a learning curve from")


def claims(paper_runs: list[dict], alpha: float = 0.1) -> pd.DataFrame:
    """Claims 1-3 judged on the paper protocol's runs by the claims page's rules; a claim whose
    runs have not all finished is 'not available' and names the missing ones. A log-likelihood
    difference (claims 1 and 3) over three or more paired seeds takes its error from the spread
    of the per-seed differences; with fewer, it borrows the seed spread of the first model when
    that has three seeds here, else the quick profile's seed study; its evidence names which.
    Claim 4 (CelebA) is not a claim about these runs."""
    needs = {
        1: [("jmvae_kl", alpha), ("vae", 0.0)],
        2: [("jmvae_kl", alpha)],
        3: [("jmvae_zero", 0.0), *(("jmvae_kl", a) for a in ALPHAS)],
    }
    judge = {1: verdicts._claim1, 2: verdicts._claim2, 3: verdicts._claim3}
    rows = []
    for n, need in needs.items():
        seeds = claim_seeds(paper_runs, need)
        missing = [
            tables.run_label(v, a) for v, a in need if not verdicts.select_runs(paper_runs, v, a)
        ]
        if missing:
            row = {
                "evidence": "not yet finished at the paper's protocol: " + ", ".join(missing),
                "rule": "as above",
                "verdict": tables.NOT_AVAILABLE,
            }
        else:
            row = judge[n](paper_runs, alpha)
            if n != 2:  # claim 2 rests on proportions over images, not on a seed spread
                row["evidence"] += f"; seed(s) {seeds}"
        rows.append({**row, "claim": verdicts.CLAIMS[n], "seeds": seeds})
    return pd.DataFrame(rows).set_index("claim")


def common_seeds(paper_runs: list[dict], need) -> set[int]:
    """The seeds every model (variant, alpha) of `need` has finished."""
    return set.intersection(
        *({r["seed"] for r in verdicts.select_runs(paper_runs, v, a)} for v, a in need)
    )


def claim_seeds(paper_runs: list[dict], need) -> str:
    """The seeds every model of a claim has finished ('1, 2'), which its differences pair;
    'none' while one of them has none."""
    return ", ".join(map(str, sorted(common_seeds(paper_runs, need)))) or "none"


def glue_claims(paper_runs: list[dict], alpha: float = 0.1) -> None:
    """Glue claims 1-3 at the paper's protocol for the pages that cite them (myst-nb; inside an
    executing notebook): the verdicts as claim<N>_paper_verdict, the seeds each claim pairs as
    claim<N>_paper_seeds, and the claims as MyST text under claims_paper_md."""
    from myst_nb import glue

    table = claims(paper_runs, alpha)
    verdicts.glue_verdicts(table, "claims_paper_md", suffix="_paper")
    for i, seeds in enumerate(table["seeds"], start=1):
        glue(f"claim{i}_paper_seeds", seeds, display=False)


def binarisation_spread(folder: Path | None = None) -> dict:
    """What benchmarks/binarisation_spread.py measured (its newest report): one run's log p(x)
    on several binary draws of the test images, as text by glue name; "not available" until
    it has run."""
    folder = Path(folder) if folder is not None else results.REPO_ROOT / "benchmarks" / "results"
    reports = [results.read_json(p) for p in sorted(folder.glob("*-binarisation-spread.json"))]
    keys = ("run", "draws", "sd", "low", "high", "k")
    if not reports:
        return dict.fromkeys(keys, tables.NOT_AVAILABLE)
    report = max(reports, key=lambda r: r["time"])
    means = [d["mean"] for d in report["draws"]]
    sd = report["sd_over_draws"]
    return {
        "run": report["run_id"],
        "draws": str(len(means)),
        "sd": tables.NOT_AVAILABLE if sd is None else f"{sd:.2f}",
        "low": f"{min(means):.2f}",
        "high": f"{max(means):.2f}",
        "k": str(report["k"]),
    }


def gap_in_spreads(head: dict, spread: dict) -> dict:
    """The gap of the seed mean to the paper (tables.headline) in units of the spread that a
    seed and a binary draw of the test images make together, sqrt(sd_seed² + sd_draw²)."""
    try:
        gap, sds = float(head["seeds_gap"]), (float(head["seeds_sd"]), float(spread["sd"]))
    except ValueError:  # a value not available
        return dict.fromkeys(("combined", "ratio"), tables.NOT_AVAILABLE)
    combined = (sds[0] ** 2 + sds[1] ** 2) ** 0.5
    return {"combined": f"{combined:.2f}", "ratio": f"{abs(gap) / combined:.1f}"}


def alpha_sweep(paper_runs: list[dict], alpha: float = 0.1) -> dict:
    """The alpha chapter's sweep at the paper's protocol: JMVAE-kl at every alpha of the plan
    and JMVAE-zero (latent 64), at the seeds all of them have finished, so that every point is
    made by the same seeds. Returns the table (rows alpha, columns estimators: means over those
    seeds), JMVAE-zero's reference values, the runs, and glue text: the values the chapter
    cites (as mnist_report.alpha_values), the seeds, and the sd over every finished seed of
    `alpha` of the joint and the single-input log p(x), the yardstick for a difference between
    two alphas. While a model has no run at those seeds, the table is a status row naming the
    missing ones and every value is "not available"."""
    need = [*(("jmvae_kl", a) for a in ALPHAS), ("jmvae_zero", 0.0)]
    seeds = claim_seeds(paper_runs, need)
    common = common_seeds(paper_runs, need)
    chosen = [
        r for v, a in need for r in verdicts.select_runs(paper_runs, v, a) if r["seed"] in common
    ]
    kl = verdicts.select_runs(paper_runs, "jmvae_kl", alpha)
    sd = tables.summary(kl).set_index("estimator")["sd"] if kl else pd.Series(dtype=float)
    text = {"seeds": seeds, "sd_alpha": f"{alpha:g}", "sd_seeds": str(len(kl))}
    for name in ("joint", "pseudo_marginal"):
        value = sd.get(name)
        text[f"sd_{name}"] = (
            tables.NOT_AVAILABLE if value is None or pd.isna(value) else f"{value:.2f}"
        )
    if not chosen:
        missing = [
            tables.run_label(v, a) for v, a in need if not verdicts.select_runs(paper_runs, v, a)
        ]
        status = "not yet finished at the paper's protocol: " + (
            ", ".join(missing) or "a seed all share"
        )
        return {
            "table": _status(status),
            "zero": {},
            "runs": [],
            "text": text | dict.fromkeys(mnist_report.ALPHA_VALUES, tables.NOT_AVAILABLE),
        }
    return {
        "table": tables.alpha_table(chosen),
        "zero": mnist_report.zero_reference(chosen),
        "runs": chosen,
        "text": text | mnist_report.alpha_values(chosen),
    }


def alpha_figure(sweep: dict):
    """The alpha figure of the paper-protocol sweep (plots.alpha_plot), or its status table
    while the sweep is incomplete."""
    if not sweep["runs"]:
        return sweep["table"]
    return plots.alpha_plot(sweep["table"], tables.ESTIMATOR_LABELS, sweep["zero"])


def generation(paper_runs: list[dict]) -> dict:
    """The generation chapter at the paper's protocol, from each model's first seed there: the
    label -> image grid of every label-conditioned model (mnist_report.GENERATORS), the table of
    both directions (tables.judged_coherence_table) and the coherences the chapter cites
    (mnist_report.judge_values). What has not finished is a status row in its place."""
    judged = [r for r in paper_runs if r["latent_dim"] == 64 and "judged_coherence" in r]
    figures = mnist_report.label_to_image_figures(judged, PROFILE) if judged else {}
    none = "no label-conditioned run of the paper's protocol has finished yet"
    keys = ("accuracy", *mnist_report.GENERATORS)  # mnist_report.judge_values's
    return {
        "figures": {
            key: figures.get(key, _status(f"{name} has not finished at the paper's protocol yet"))
            for key, name in mnist_report.GENERATORS.items()
        },
        "table": tables.judged_coherence_table(judged) if judged else _status(none),
        "text": mnist_report.judge_values(judged) if judged else dict.fromkeys(keys, none),
    }


def _status(text: str) -> pd.DataFrame:
    """A one-row table glued where a figure or table will stand once its runs exist."""
    return pd.DataFrame({"status": [text]}, index=["paper protocol"])


def latent_space(paper_runs: list[dict]) -> dict:
    """The 2-D latent chapter at the paper's protocol: the latent-means figure and the digits'
    separation (pages.latent) from the 2-D runs finished there, and which they are; a status
    row in their place while none has finished."""
    runs = latent.latent_runs(paper_runs)
    names = sorted(tables.run_label(r["variant"], r["alpha"]) for r in runs)
    if not runs:
        missing = _status("no 2-D run of the paper's protocol has finished yet")
        return {"figure": missing, "table": missing, "which": "none"}
    return {
        "figure": latent.latent_figure(runs, PROFILE),
        "table": latent.latent_separation(runs),
        "which": ", ".join(names),
    }
