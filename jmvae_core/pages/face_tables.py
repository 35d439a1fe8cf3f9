"""Tables and figures of the face chapter (book/celeba.md): Table 2, attributes, coherence, claim 4.

Pure functions of the runs returned by `results.load_runs(profile, dataset=...)`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from jmvae_core import models
from jmvae_core.config import IMAGE_VARIANTS
from jmvae_core.pages import plots, verdicts
from jmvae_core.pages.plots import _chars, _wrap
from jmvae_core.pages.tables import NOT_AVAILABLE

LABELS = {v: models.label(v) for v in models.names("faces")}
# Table 2 columns: (estimator, what it estimates, proposal)
COLUMNS = {
    "marginal": "log p(x), q(z|x,w)",
    "pseudo_marginal": "log p(x), q(z|x)",
    "conditional": "log p(x|w), q(z|x,w)",
    "pseudo_conditional": "log p(x|w), q(z|w)",
    "joint": "log p(x,w), q(z|x,w)",
}
CONVENTIONS = {"": "plain sum", "_channel_mean": "channel mean (code)"}


def by_variant(runs: list[dict]) -> dict[str, dict]:
    """{variant: run} in the order of book/celeba.md; one run per variant is expected."""
    found = {r["variant"]: r for r in runs}
    return {v: found[v] for v in IMAGE_VARIANTS if v in found}


def table2(runs: list[dict]) -> pd.DataFrame:
    """Every estimator of every variant in both image conventions: 'mean ± sem' strings, with
    '—' where an estimator does not apply; the paper's column is not available (book/model.md).

    Long layout, narrow enough for the page: one row per (estimate, variant), the variants of
    one estimate together, and one column per convention plus the paper's."""
    rows = {}
    for name, label in COLUMNS.items():
        for variant, run in by_variant(runs).items():
            row = {}
            for suffix, convention in CONVENTIONS.items():
                est = run["estimators"].get(name + suffix)
                row[convention] = f"{est['mean']:.1f} ± {est['sem']:.1f}" if est else "—"
            row["paper (Table 2)"] = "not available"
            rows[(label, LABELS[variant])] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = pd.MultiIndex.from_tuples(table.index, names=["estimate, proposal", "model"])
    table.columns.name = "convention"
    return table


def _per_run_tables(runs: list[dict], filename: str, columns: list[str]) -> dict:
    """{variant label: the run's <filename> indexed by attribute} for the runs that have it."""
    tables = {}
    for variant, run in by_variant(runs).items():
        path = Path(run["path"]) / filename
        if path.exists():
            tables[LABELS[variant]] = pd.read_csv(path).set_index("attribute")[columns]
    return tables


def attribute_table(runs: list[dict]) -> pd.DataFrame:
    """Per-attribute accuracy and AUC of attributes estimated from images, one column pair per
    variant that has p(w|z) (from each run's attributes.csv), and the test positive rate;
    rounded to 3 decimals, indexed by attribute."""
    parts = _per_run_tables(runs, "attributes.csv", ["accuracy", "auc", "positive_rate"])
    if not parts:
        return pd.DataFrame()
    rate = next(iter(parts.values()))["positive_rate"]
    table = pd.concat({k: v[["accuracy", "auc"]] for k, v in parts.items()}, axis=1)
    table[("test set", "positive rate")] = rate
    table.columns = table.columns.set_levels(
        table.columns.levels[1].str.replace("auc", "AUC"), level=1
    )
    table.columns.names = ["model", "measure"]
    return table.round(3)


def coherence_table(runs: list[dict]) -> pd.DataFrame:
    """Per-attribute coherence of attribute -> face generation and its chance baseline, one
    column per variant that generates from attributes (each run's coherence.csv).

    Narrow layout: rows (attribute, 'coherence' or 'chance'), columns the variants (LABELS);
    rounded to 3 decimals. `coherence_plot` draws one column."""
    parts = _per_run_tables(runs, "coherence.csv", ["coherence", "chance"])
    if not parts:
        return pd.DataFrame()
    wide = pd.concat(parts, axis=1)  # columns (variant, measure)
    table = wide.stack(level=1, future_stack=True)  # rows (attribute, measure)
    table = table.reindex(
        pd.MultiIndex.from_product([wide.index, ["coherence", "chance"]]), columns=list(parts)
    )
    table.index.names = ["attribute", "measure"]
    table.columns.name = "model"
    return table.round(3)


def claim4(runs: list[dict]) -> pd.DataFrame:
    """Claim 4 of the claims chapter by a fixed rule: JMVAE-GAN's log p(x) (q(z|x,w), plain sum)
    against VAE-GAN's and its log p(x|w) against CVAE-GAN's and CMMA-GAN's, for each JMVAE GAN
    form: the difference with its standard error (paired per image where both runs stored
    their estimates, else from the two test-set standard errors) and whether JMVAE is better
    by two standard errors (verdicts.above: yes / no / not resolved). Indexed by (JMVAE form,
    against)."""

    runs_by = by_variant(runs)
    rows = []
    for jm in ("jmvae_gan", "jmvae_kl_gan"):
        for base, name in (("vae_gan", "marginal"), ("cvae_gan", "conditional"),
                           ("cmma_gan", "conditional")):  # fmt: skip
            row = {"JMVAE form": LABELS[jm], "against": LABELS[base], "estimate": COLUMNS[name]}
            have = [runs_by.get(v) for v in (jm, base)]
            if all(r is not None and name in r["estimators"] for r in have):
                a, b = ((v, have[i]["alpha"] or 0.0) for i, v in enumerate((jm, base)))
                d = verdicts.difference(runs, a, b, name, sd=0.0, latent_dim=have[0]["latent_dim"])
                row |= {"JMVAE": round(have[0]["estimators"][name]["mean"], 1),
                        "baseline": round(have[1]["estimators"][name]["mean"], 1),
                        "Δ ± SE": f"{d.mean:+.1f} ± {d.se:.1f}",
                        "JMVAE better": verdicts.above(d, 0.0)}  # fmt: skip
            else:
                row |= {"JMVAE": None, "baseline": None, "Δ ± SE": NOT_AVAILABLE,
                        "JMVAE better": NOT_AVAILABLE}  # fmt: skip
            rows.append(row)
    return pd.DataFrame(rows).set_index(["JMVAE form", "against"])


def _label(text) -> str:
    """A label for the page: attribute names with spaces instead of underscores."""
    return str(text).replace("_", " ")


@plots.styled
def face_grid(
    images: np.ndarray, ncols: int, title: str, col_labels=None, row_labels=None,
    *, max_cols: int = 8,
):  # fmt: skip
    """Faces (N, 64, 64, 3) uint8 laid out row by row, `ncols` per row, with column labels on
    top (wrapped to the face width) and row labels at the left (horizontal).

    About 11-12 in wide at 100 dpi (faces 1.1 in); more than `max_cols` columns are split
    into bands of at most `max_cols` (e.g. 16 attributes: two bands of 8, each with its column
    labels and the row labels again), so that faces and labels stay legible on the page."""
    n = images.shape[0]
    nrows = int(np.ceil(n / ncols))
    bands = int(np.ceil(ncols / max_cols))
    per = int(np.ceil(ncols / bands))
    label_w = 2.1 if row_labels is not None else 0.2
    face = min(1.1, (plots.WIDE - label_w) / per)
    col_text = [_wrap(_label(c), _chars(face, 13)) for c in col_labels or []]
    head = 0.25 + 0.22 * max((t.count("\n") + 1 for t in col_text), default=0)
    width = max(6.5, label_w + per * face + 0.3)
    height = bands * (nrows * face * 1.04 + head) + 0.7
    fig, axes = plots._figure(width, height, nrows=bands * nrows, ncols=per, squeeze=False)
    used = set()
    for i in range(nrows * ncols):
        r, c = divmod(i, ncols)
        band, cc = divmod(c, per)
        ax = axes[band * nrows + r, cc]
        used.add((band * nrows + r, cc))
        ax.set_xticks([])
        ax.set_yticks([])
        if i < n:
            ax.imshow(images[i])
        else:
            ax.axis("off")
        if col_labels is not None and r == 0:
            ax.set_title(col_text[c], fontsize=13)
        if row_labels is not None and cc == 0:
            ax.set_ylabel(
                _wrap(row_labels[r], _chars(label_w - 0.1, 13)), rotation=0, ha="right",
                va="center", fontsize=13, labelpad=8,
            )  # fmt: skip
    for (row, col), ax in np.ndenumerate(axes):
        if (row, col) not in used:
            fig.delaxes(ax)
    fig.suptitle(_wrap(title, _chars(width, 15)))
    return fig


@plots.styled
def coherence_plot(table: pd.DataFrame, variant_label: str, title: str):
    """Per-attribute coherence of one variant against its chance baseline (bars); `table` is
    coherence_table's (rows (attribute, measure), columns variants)."""
    column = table[variant_label]
    if isinstance(column, pd.Series):  # coherence_table's layout
        attributes = list(dict.fromkeys(column.index.get_level_values(0)))
        df = column.unstack().reindex(attributes)
    else:  # columns (variant, measure)
        df = column
    fig, ax = plots._figure(plots.WIDE, 5.2)
    x = np.arange(len(df))
    ax.bar(x - 0.2, df["coherence"], width=0.4, label="generated faces")
    ax.bar(x + 0.2, df["chance"], width=0.4, label="chance (permuted requests)", color="0.7")
    ax.set_xticks(x, [_label(a) for a in df.index], rotation=45, ha="right", rotation_mode="anchor")
    ax.set(ylim=(0, 1), ylabel="judge agrees with request", xlabel="requested attribute")
    ax.set_title(_wrap(title, _chars(plots.WIDE, 15)))
    fig.legend(loc="outside lower center", ncol=2, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return fig
