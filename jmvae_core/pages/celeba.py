"""What the CelebA chapter shows (book/celeba.md): tables, figures and the prose's numbers."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from jmvae_core import config, environment, models, store
from jmvae_core.pages import face_tables as ft
from jmvae_core.pages import plots, results
from jmvae_core.pages.layout import closed


def face_banner(dataset: str) -> str:
    """Which data the face chapter was executed on, in capitals for the stand-in."""
    return config.DATASETS[dataset].title


def face_header(runs: list[dict], profile: str) -> str:
    """The profile, and the runs' width, data sizes, epochs and k."""
    first = next(iter(ft.by_variant(runs).values()))
    marginal = first["estimators"]["marginal"]
    return (
        f"profile {profile} ({config.IMAGE_PROFILE_NOTES[profile]}): "
        f"{len(runs)} runs; conv width {first['width']}; {first['n_train']} training and "
        f"{marginal['n_test']} test faces; {first['epochs']} epochs; k = {marginal['k']}"
    )


def rec_curves(runs: list[dict]) -> pd.DataFrame:
    """The image term (−E log p(x|z), nats per face) of each variant per epoch."""
    curves = pd.concat(
        {
            ft.LABELS[v]: pd.read_csv(Path(r["path"]) / "history.csv").set_index("epoch")["rec_x"]
            for v, r in ft.by_variant(runs).items()
        },
        axis=1,
    )
    curves.columns.name = "model"
    return curves


def rec_table(runs: list[dict]) -> pd.DataFrame:
    """The image term at the last epoch and its drop during that epoch, per model."""
    curves = rec_curves(runs)
    table = pd.DataFrame(
        {"last epoch": curves.iloc[-1].round(1), "drop in the last epoch": _last_drop(curves)}
    )
    table.index.name = "model"
    return table


def _last_drop(curves: pd.DataFrame) -> pd.Series:
    return (-curves.diff()).iloc[-1].round(1)  # NaN with a single epoch


def rec_drop_text(runs: list[dict]) -> str:
    """The range of the last epoch's drop over the models ("a–b" nats)."""
    drop = _last_drop(rec_curves(runs)).dropna()
    if drop.empty:
        return "unknown (one epoch)"
    return f"{drop.min():.0f}–{drop.max():.0f}"


def rec_figure(runs: list[dict], banner: str) -> plt.Figure:
    """The image term per epoch, one line per model, in the book's figure style."""
    curves = rec_curves(runs)
    with plt.rc_context(getattr(plots, "FONT", {})):
        fig, ax = plt.subplots(figsize=(getattr(plots, "WIDE", 12.0), 4.8), layout="constrained")
        for model in curves.columns:
            ax.plot(curves.index, curves[model], marker="o", label=model)
        ax.set(xlabel="epoch", ylabel="nats per face", title=f"−E log p(x|z) per epoch ({banner})")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return closed(fig)


def table2(runs: list[dict]) -> pd.DataFrame:
    """The paper's Table 2 for these runs (face_tables.table2): every estimator of every model
    in both image conventions, "mean ± sem", with the paper's column marked not available."""
    return ft.table2(runs)


def claim4_table(runs: list[dict]) -> pd.DataFrame:
    """face_tables.claim4, indexed by the JMVAE form and the baseline it is compared with."""
    claim = ft.claim4(runs)
    keys = [k for k in ("JMVAE form", "against") if k in claim.columns]
    return claim.set_index(keys) if keys else claim


def claim4_verdict(runs: list[dict], banner: str | None = None) -> str:
    """From face_tables.claim4's comparisons, each decided by two standard errors: supported
    if JMVAE is better in all, not supported if it is worse in any, partly supported if it is
    better in some and the rest are not resolved, else not resolved; and on which data where
    `banner` names them."""
    calls = ft.claim4(runs)["JMVAE better"].tolist()
    yes, no = calls.count("yes"), calls.count("no")
    verdict = ("supported" if yes == len(calls) else "not supported" if no
               else "partly supported" if yes else "not resolved")  # fmt: skip
    result = f"{verdict} ({yes} of {len(calls)} comparisons better by 2 SE, {no} worse)"
    return f"{result} on: {banner}" if banner else result


def recon_figure(runs: list[dict], banner: str) -> plt.Figure:
    """Test faces, then per variant the reconstructions from q(z|x) and from q(z|x,w)."""
    by = ft.by_variant(runs)
    originals = results.load_arrays(next(iter(by.values())))["recon_x"]
    rows, labels = [originals], ["test faces"]
    for variant, run in by.items():
        arrays = results.load_arrays(run)
        for key, where in (("recon_from_x", "q(z|x)"), ("recon_from_xw", "q(z|x,w)")):
            if key in arrays:
                rows.append(arrays[key])
                labels.append(f"{ft.LABELS[variant]}\n{where}")
    fig = ft.face_grid(
        np.concatenate(rows), originals.shape[0], f"Reconstructions ({banner})", row_labels=labels
    )
    return closed(fig)


ATTRIBUTE_FACE_VARIANTS = ("jmvae_kl_gan", "jmvae_gan", "jmvae_kl_face", "cmma_gan", "cvae_gan")


def attribute_faces_figure(runs: list[dict], banner: str) -> plt.Figure:
    """Per generating variant, the average face generated for each attribute."""
    by = ft.by_variant(runs)
    shown = [v for v in ATTRIBUTE_FACE_VARIANTS if v in by]
    faces = np.concatenate([results.load_arrays(by[v])["attribute_faces"] for v in shown])
    names = [str(n) for n in results.load_arrays(by[shown[0]])["attribute_names"]]
    fig = ft.face_grid(
        faces,
        len(names),
        f"Average generated face per attribute ({banner})",
        col_labels=[n.replace("_", " ") for n in names],
        row_labels=[ft.LABELS[v] for v in shown],
    )
    return closed(fig)


def edit_figure(runs: list[dict], variant: str, banner: str) -> plt.Figure:
    """Test faces re-generated from q(z|x,w') with one attribute of w flipped."""
    arrays = results.load_arrays(ft.by_variant(runs)[variant])
    edits = [str(e) for e in arrays["edit_names"]]
    title = f"{ft.LABELS[variant]}: flip one attribute ({banner})"
    cols = ["test face"] + [f"flip {e}" for e in edits]
    fig = ft.face_grid(arrays["edit_faces"], 1 + len(edits), title, col_labels=cols)
    return closed(fig)


def attribute_table(runs: list[dict]) -> pd.DataFrame:
    """Per attribute: accuracy and AUC of attributes read from images, and the positive rate."""
    return ft.attribute_table(runs).round(3)


NO_COHERENCE = "no coherence results for this dataset (no attribute judge is trained for it)"


def coherence_summary(runs: list[dict]) -> pd.DataFrame:
    """Per model: mean coherence over attributes, its chance baseline, and the fraction of
    faces whose every attribute matches; empty where no judge was trained."""
    rows = {
        ft.LABELS[v]: r["coherence"] for v, r in ft.by_variant(runs).items() if "coherence" in r
    }
    if not rows:
        return pd.DataFrame(columns=["mean", "chance", "all_match"])
    table = pd.DataFrame(rows).T[["mean", "chance", "all_match"]].astype(float).round(3)
    table.index.name = "model"
    return table


def judge_accuracy(runs: list[dict]) -> str:
    """The judge's mean accuracy on the real test faces, or why there is none."""
    accs = [r["coherence"]["judge_accuracy"] for r in runs if "coherence" in r]
    return f"{accs[0]:.3f}" if accs else NO_COHERENCE


def kl_gan_coherence(runs: list[dict]) -> str:
    """JMVAE-kl-GAN's coherence with its chance baseline, or why there is none."""
    summary = coherence_summary(runs)
    if "JMVAE-kl-GAN" not in summary.index:
        return NO_COHERENCE
    kl = summary.loc["JMVAE-kl-GAN"]
    return f"{kl['mean']:.3f} (chance {kl['chance']:.3f})"


def coherence_table(runs: list[dict]) -> pd.DataFrame:
    """Per attribute and model: coherence and its chance baseline."""
    return ft.coherence_table(runs).round(3)


def coherence_figure(runs: list[dict], banner: str, label: str = "JMVAE-kl-GAN") -> plt.Figure:
    """One model's per-attribute coherence against chance; a figure saying so where none."""
    table = ft.coherence_table(runs)
    if table.empty or label not in table.columns.get_level_values(0):
        fig, ax = plt.subplots(figsize=(getattr(plots, "WIDE", 12.0), 1.2))
        ax.axis("off")
        text = textwrap.fill(f"{NO_COHERENCE} ({banner})", 100)
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12)
        return closed(fig)
    title = f"{label}: attribute → face coherence per attribute ({banner})"
    return closed(ft.coherence_plot(table, label, title))


def face_facts(runs: list[dict]) -> dict:
    """Number of face runs and the largest Table 2 log p(x) (plain sum) with its model."""
    by = ft.by_variant(runs)
    means = {
        ft.LABELS[v]: r["estimators"]["marginal"]["mean"]
        for v, r in by.items()
        if "marginal" in r["estimators"]
    }
    best = max(means, key=means.get)
    return {
        "n_runs": len(runs),
        "best_marginal_model": best,
        "best_marginal": round(float(means[best]), 1),
    }


AT_CHANCE = ("Smiling", "Mouth_Slightly_Open", "Narrow_Eyes")  # the attributes the text names


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def _csv(run: dict, name: str) -> pd.DataFrame:
    return pd.read_csv(Path(run["path"]) / name).set_index("attribute")


def _edit_spread(run: dict) -> tuple[float, float]:
    """Edit figure of a run: (mean absolute deviation of a face's edits from their own average,
    mean absolute difference of an edit from the test face), in grey levels of 255."""
    arrays = results.load_arrays(run)
    n_edits = len(arrays["edit_names"])
    faces = arrays["edit_faces"].astype(float).reshape(-1, 1 + n_edits, 64, 64, 3)
    edits, original = faces[:, 1:], faces[:, :1]
    spread = np.abs(edits - edits.mean(1, keepdims=True)).mean()
    return float(spread), float(np.abs(edits - original).mean())


def face_text_values(runs: list[dict]) -> dict[str, str]:
    """Every number the face chapter's prose cites, from the runs' files: attribute estimation
    (attributes.csv), coherence (coherence.csv, the judge's accuracy.csv), the edit figures
    (arrays.npz) and the seconds per step (history.csv). Glued as face_<key>; "not available"
    where a run or file is missing."""
    by = ft.by_variant(runs)
    out: dict[str, str] = {}
    kl = by.get("jmvae_kl_gan")
    if kl is not None and (Path(kl["path"]) / "attributes.csv").exists():
        a = _csv(kl, "attributes.csv")
        majority = np.maximum(a["positive_rate"], 1 - a["positive_rate"])
        others = a.drop(index=[n for n in AT_CHANCE if n in a.index])
        out |= {
            "kl_acc": _pct(a["accuracy"].mean()), "majority": _pct(majority.mean()),
            "kl_auc": f"{a['auc'].mean():.3f}", "n_others": str(len(others)),
            "others_auc": f"{others['auc'].min():.3f} and {others['auc'].max():.3f}",
        }  # fmt: skip
        for name in AT_CHANCE:
            if name in a.index:
                out[f"{name}_acc"] = _pct(a.loc[name, "accuracy"])
                out[f"{name}_majority"] = _pct(majority[name])
                out[f"{name}_auc"] = f"{a.loc[name, 'auc']:.3f}"
    same = [by[v] for v in ("jmvae_gan", "jmvae_kl_face") if v in by]
    if same:
        aucs = pd.concat([_csv(r, "attributes.csv")["auc"] for r in same], axis=1)
        three = aucs.loc[[n for n in AT_CHANCE if n in aucs.index]]
        rest = aucs.drop(index=three.index)
        out["same_three_auc"] = f"{three.min().min():.2f}–{three.max().max():.2f}"
        out["same_rest_auc"] = f"{rest.min().min():.2f}–{rest.max().max():.2f}"
    judged = [r for r in runs if "coherence" in r]
    if judged:
        out["judge_mean"] = _pct(judged[0]["coherence"]["judge_accuracy"])
        judge_dir = environment.results_root() / judged[0]["profile"]
        found = sorted(judge_dir.glob(f"classifier-{judged[0]['dataset']}-*/accuracy.csv"))
        if found:
            j = pd.read_csv(found[0]).set_index("attribute")["accuracy"]
            out["judge_three"] = ", ".join(_pct(j[n]) for n in AT_CHANCE if n in j.index)
    summary = coherence_summary(runs)
    for variant, key in (("jmvae_kl_gan", "kl"), ("cvae_gan", "cvae"), ("cmma_gan", "cmma"),
                         ("jmvae_kl_face", "kl_face"), ("jmvae_gan", "zero")):  # fmt: skip
        label = ft.LABELS[variant]
        if label in summary.index:
            out[f"coh_{key}"] = f"{summary.loc[label, 'mean']:.3f}"
            out[f"coh_{key}_chance"] = f"{summary.loc[label, 'chance']:.3f}"
            out[f"coh_{key}_all"] = _pct(summary.loc[label, "all_match"])
    order = summary["mean"].sort_values(ascending=False)
    out["coh_order"] = ", ".join(f"{name} ({value:.3f})" for name, value in order.items())
    if kl is not None and (Path(kl["path"]) / "coherence.csv").exists():
        c = _csv(kl, "coherence.csv")
        margin = (c["coherence"] - c["chance"]).sort_values(ascending=False)
        low = margin.index[-1]
        out["margin_top"] = f"{margin.iloc[0]:+.3f} ({margin.index[0]})"
        out["margin_low"] = (
            f"{margin.iloc[-1]:+.3f} ({low}, {c.loc[low, 'coherence']:.3f} against "
            f"{c.loc[low, 'chance']:.3f})"
        )
        out["margin_second_low"] = f"{margin.iloc[-2]:+.3f} ({margin.index[-2]})"
    for variant, key in (("jmvae_kl_gan", "kl"), ("jmvae_gan", "zero")):
        if variant in by and "edit_faces" in results.load_arrays(by[variant]):
            spread, moved = _edit_spread(by[variant])
            out[f"edit_{key}_spread"], out[f"edit_{key}_moved"] = f"{spread:.1f}", f"{moved:.1f}"
    per_step = {}  # median seconds per training step (epoch time / batches per epoch)
    for v, r in by.items():
        if r.get("n_train"):
            batch = store.read_json(Path(r["path"]) / "config.json")["train"]["batch_size"]
            epoch_s = float(np.median(results.load_history(r)["time_s"]))
            per_step[v] = epoch_s / (r["n_train"] // batch)
    gan_steps = [s for v, s in per_step.items() if models.spec(v).adversarial]
    if gan_steps:
        out["gan_step_s"] = f"{min(gan_steps):.1f}–{max(gan_steps):.1f}"
    if "jmvae_kl_face" in per_step:
        out["kl_face_step_s"] = f"{per_step['jmvae_kl_face']:.1f}"
    return out
