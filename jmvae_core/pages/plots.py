"""Pure functions: arrays and tables -> matplotlib Figures for the paper's figures.

The book shows a figure at most ~680 px wide on a 1280 px screen and ~350 px on a phone, so the
figures are drawn 9-12 in wide at 100 dpi with 14-16 pt text: scaled down to the page they
stay legible, and their layout (constrained) makes room for every label and legend.
"""

from __future__ import annotations

import contextlib
import functools
import textwrap

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, NullLocator

LOSS_TERMS = [
    "loss", "rec_x", "rec_w", "kl_prior", "kl_cond", "kl_x", "kl_w", "dec_loss", "d_loss",
]  # fmt: skip
# what each history.csv column measures (nats per example), in words
TERM_LABELS = {
    "loss": "loss (negative bound)",
    "rec_x": "reconstruction of x (nats)",
    "rec_w": "reconstruction of w",
    "kl_prior": "KL(q(z|x,w) ‖ p(z))",
    "kl_cond": "KL(q(z|x,w) ‖ p(z|w))",
    "kl_x": "KL(q(z|x,w) ‖ q(z|x))",
    "kl_w": "KL(q(z|x,w) ‖ q(z|w))",
    "dec_loss": "decoder loss (GAN)",
    "d_loss": "discriminator loss (GAN)",
}
# image-only models (VAE, VAE-GAN) encode x alone
_IMAGE_ONLY = {"vae", "vae_gan"}
DPI = 100
WIDE = 12.0  # inches: a full-width figure, 1200 px at DPI
FONT = {
    "font.size": 14,
    "axes.titlesize": 15,
    "axes.labelsize": 15,
    "xtick.labelsize": 14,
    "ytick.labelsize": 14,
    "legend.fontsize": 14,
    "legend.title_fontsize": 14,
    "figure.titlesize": 16,
}
DIGIT_CMAP = ListedColormap(plt.get_cmap("tab10").colors, name="digits")
DIGIT_NORM = BoundaryNorm(np.arange(-0.5, 10.5), DIGIT_CMAP.N)


@contextlib.contextmanager
def fonts():
    """The FONT sizes for the text drawn inside; only those settings are restored on leaving.

    (Not `plt.rc_context`: it restores every setting, so a first figure in a Jupyter kernel,
    where IPython switches interactive mode on while the inline backend is chosen, would switch
    it off again, and later figures would no longer be shown at the end of their cells.)"""
    saved = {key: matplotlib.rcParams[key] for key in FONT}
    matplotlib.rcParams.update(FONT)
    try:
        yield
    finally:
        matplotlib.rcParams.update(saved)


def styled(fn):
    """`fn` drawing with the FONT sizes (text added later by a caller keeps its own)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with fonts():
            return fn(*args, **kwargs)

    return wrapper


def _figure(width: float, height: float, **kwargs):
    """A figure of the book's style: constrained layout at DPI."""
    return plt.subplots(figsize=(width, height), dpi=DPI, layout="constrained", **kwargs)


def _wrap(text: str, chars: int) -> str:
    """`text` wrapped at spaces to lines of about `chars` characters (words are not split)."""
    return "\n".join(
        textwrap.fill(line, max(chars, 4), break_long_words=False, break_on_hyphens=False)
        for line in str(text).split("\n")
    )


def _num(value: float) -> str:
    """One decimal, with a typographic minus as on the axes."""
    return f"{value:.1f}".replace("-", "\u2212")


def _chars(inches: float, fontsize: float) -> int:
    """About how many characters of DejaVu Sans at `fontsize` pt fit in `inches`."""
    return int(inches * 72 / (0.6 * fontsize))


@styled
def learning_curve(
    history: pd.DataFrame, title: str = "", *, variant: str | None = None, labels=None
) -> plt.Figure:
    """Per-epoch mean loss terms (nats): the total on the left, its parts on the right (log
    axis when all are positive), each named in words (TERM_LABELS; `labels` overrides).
    `variant` names the model; an image-only one (vae, vae_gan) has KL(q(z|x) ‖ p(z))."""
    names = dict(TERM_LABELS)
    if variant in _IMAGE_ONLY:
        names["kl_prior"] = "KL(q(z|x) ‖ p(z))"
    elif variant is None and not {"rec_w", "kl_cond", "kl_x", "kl_w"} & set(history):
        names["kl_prior"] = "KL(q(z|·) ‖ p(z))"  # VAE or CVAE: the encoder's input is unknown
    names.update(labels or {})
    epochs = history["epoch"]
    marker = "o" if len(epochs) <= 50 else None  # 500 epochs read as lines
    fig, (ax0, ax1) = _figure(WIDE, 4.4, ncols=2, width_ratios=[1, 1.15])
    ax0.plot(epochs, history["loss"], marker=marker, ms=4, color="k", label=names["loss"])
    ax0.set(xlabel="epoch", ylabel="nats per example")
    ax0.set_title(_wrap(title, _chars(5, 15)) if title else "training loss", loc="left")
    ax0.legend(loc="upper right")
    terms = [
        t for t in LOSS_TERMS[1:] if t in history and np.any(np.asarray(history[t]) != 0)
    ]  # an all-zero term (e.g. CMMA without the prior KL) is not part of this loss
    for i, term in enumerate(terms):
        ax1.plot(epochs, history[term], marker=marker, ms=4, color=f"C{i}", label=names[term])
    positive = all((history[t] > 0).all() for t in terms)
    ax1.set(xlabel="epoch", ylabel="nats per example" + (" (log scale)" if positive else ""))
    if positive and terms:
        ax1.set_yscale("log")
    ax1.set_title("its terms", loc="left")
    if terms:
        ax1.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    for ax in (ax0, ax1):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    return fig


def _grid_shape(n: int, max_cols: int) -> tuple[int, int]:
    """(rows, cols) for n panels: as few empty cells as possible, then as many columns."""
    if n <= max_cols:
        return 1, max(n, 1)
    cols = min(range(2, max_cols + 1), key=lambda c: (-(-n // c) * c - n, -c))
    return -(-n // cols), cols


@styled
def latent_scatter(
    panels: dict[str, tuple[np.ndarray, np.ndarray]], caption: str, *, max_cols: int = 4
) -> plt.Figure:
    """2-D latent means coloured by digit: {panel title: (means (N, 2), labels (N,))}.

    Only the given panels are drawn (a grid of at most `max_cols` columns with the fewest empty
    cells; an empty cell has no axes), each with axes z1, z2; one colour bar names the digits."""
    n = len(panels)
    rows, cols = _grid_shape(n, max_cols)
    side = min(4.5, (WIDE - 1.2) / cols)
    width = max(6.5, min(WIDE, cols * side + 1.5))
    fig, axes = _figure(width, side * rows + 0.8, nrows=rows, ncols=cols, squeeze=False)
    flat = list(axes.flat)
    for ax, (title, (means, labels)) in zip(flat, panels.items(), strict=False):
        ax.scatter(
            means[:, 0], means[:, 1], s=3, c=np.asarray(labels), cmap=DIGIT_CMAP,
            norm=DIGIT_NORM, linewidths=0, rasterized=True,
        )  # fmt: skip
        ax.set_title(_wrap(title, _chars(side, 15)))
        ax.set(xlabel="$z_1$", ylabel="$z_2$")
        ax.set_aspect("equal", adjustable="datalim")
    for ax in flat[n:]:
        fig.delaxes(ax)
    mappable = plt.cm.ScalarMappable(norm=DIGIT_NORM, cmap=DIGIT_CMAP)
    bar = fig.colorbar(mappable, ax=flat[:n], ticks=range(10), aspect=12 * rows)
    bar.set_label("digit")
    bar.ax.tick_params(length=0)
    fig.suptitle(_wrap(caption, _chars(width, 16)))
    return fig


@styled
def image_grid(images: np.ndarray, title: str, row_labels=None, *, col_labels=None) -> plt.Figure:
    """A grid of 28x28 images: images (rows, cols, 784) uint8 or float, thin lines between
    them, optional row (left) and column (top) labels.

    Each image is drawn 0.6-1.1 in wide: the figure is at least 6.5 in (650 px) wide and, with
    10 or more columns, about 12 in."""
    rows, cols = images.shape[:2]
    tiles = images.reshape(rows, cols, 28, 28).transpose(0, 2, 1, 3).reshape(rows * 28, cols * 28)
    tile = float(np.clip(min((WIDE - 1.0) / cols, 10.0 / rows), 0.6, 1.1))
    margin = 1.0 if row_labels is not None else 0.4
    width = max(6.5, cols * tile + margin)
    height = rows * tile + 1.0 + (0.4 if col_labels is not None else 0.0)
    fig, ax = _figure(width, height)
    ax.imshow(tiles, cmap="gray_r", interpolation="nearest")
    for r in range(1, rows):
        ax.axhline(r * 28 - 0.5, color="0.75", lw=0.8)
    for c in range(1, cols):
        ax.axvline(c * 28 - 0.5, color="0.75", lw=0.8)
    ax.set_xticks(np.arange(cols) * 28 + 13.5 if col_labels is not None else [])
    if col_labels is not None:
        ax.set_xticklabels([_wrap(c, _chars(tile, 14)) for c in col_labels])
        ax.xaxis.tick_top()
    ax.set_yticks(np.arange(rows) * 28 + 13.5 if row_labels is not None else [])
    if row_labels is not None:
        ax.set_yticklabels([str(r) for r in row_labels])
    ax.tick_params(length=0)
    ax.set_title(_wrap(title, _chars(width, 15)))
    return fig


def _split(table: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(both-input, single-input) estimator columns: 'pseudo_*' use q(z|x) or q(z|w) alone."""
    single = [c for c in table.columns if str(c).startswith("pseudo_")]
    return [c for c in table.columns if c not in single], single


@styled
def alpha_plot(
    table: pd.DataFrame, labels: dict, zero: dict | None = None, *, off_scale: float = 1.0
) -> plt.Figure:
    """Estimates against alpha, JMVAE-zero's as dashed lines of the same colour, in two panels
    one above the other, sharing the alpha axis but each with its own y range: the both-input
    estimators (proposal q(z|x,w)) and the single-input ones (q(z|x) or q(z|w)). Alpha is on a
    log axis with a tick at each value of the table; the legends name the curves by `labels`.

    A JMVAE-zero value further than `off_scale` times a panel's curve range beyond the curves
    would squash them into a sliver: it is named with its value at that edge instead of drawn.
    9 in wide: shown at ~680 px, the text stays near its size."""
    groups = [
        (cols, title, legend)
        for cols, title, legend in zip(
            _split(table),
            ("both inputs", "single input"),
            ("proposal q(z|x,w)", "proposal q(z|x) or q(z|w)"),
            strict=True,
        )
        if cols
    ]
    fig, axes = _figure(9.0, 3.6 * len(groups) + 0.5, nrows=len(groups), squeeze=False, sharex=True)
    colors = {name: f"C{i}" for i, name in enumerate(table.columns)}
    alphas = np.asarray(table.index, dtype=float)
    for ax, (cols, title, legend) in zip(axes.flat, groups, strict=True):
        values = table[cols].to_numpy(dtype=float)
        lo, hi = np.nanmin(values), np.nanmax(values)
        reach = off_scale * max(hi - lo, 1.0)
        handles, off, drawn = [], [], [lo, hi]
        for name in cols:
            label = labels.get(name, name)
            ax.plot(alphas, table[name], marker="o", ms=7, lw=2, color=colors[name])
            handles.append(Line2D([], [], marker="o", lw=2, color=colors[name], label=label))
            ref = (zero or {}).get(name)
            if ref is None or not np.isfinite(ref):
                continue
            if lo - reach <= ref <= hi + reach:
                ax.axhline(ref, color=colors[name], ls="--", lw=1.5)
                drawn.append(ref)
            else:
                off.append((name, label, ref))
        if zero and any(n in zero for n in cols):
            dashed = Line2D([], [], color="0.3", ls="--", lw=1.5, label="JMVAE-zero (dashed)")
            handles.append(dashed)
        for below in (True, False):
            y = 0.03 if below else 0.97
            for name, label, ref in [o for o in off if bool(o[2] < lo) is below]:
                note = f"{'↓' if below else '↑'} JMVAE-zero, {label}: {_num(ref)} (off scale)"
                text = ax.annotate(
                    _wrap(note, _chars(5.0, 13)), xy=(0.02, y), xycoords="axes fraction",
                    va="bottom" if below else "top", color=colors[name], fontsize=13,
                )  # fmt: skip
                step = 0.1 * (text.get_text().count("\n") + 1)
                y += step if below else -step
        if off:  # room for the notes at the edges, beyond the curves
            bottom, top = min(drawn), max(drawn)
            span = max(top - bottom, 1.0)
            n_below = sum(bool(o[2] < lo) for o in off)
            ax.set_ylim(
                bottom - span * (0.05 + 0.3 * n_below),
                top + span * (0.05 + 0.3 * (len(off) - n_below)),
            )
        ax.set_ylabel("log-likelihood\n(nats per test image)")
        ax.set_title(title, loc="left", fontweight="bold")
        ax.grid(alpha=0.3)
        ax.legend(
            handles=handles, title=f"JMVAE-kl,\n{legend}", loc="center left",
            bbox_to_anchor=(1.02, 0.5), frameon=False, alignment="left",
        )  # fmt: skip
    last = axes.flat[-1]
    last.set_xscale("log")
    last.set_xticks(alphas, [f"{a:g}" for a in alphas])
    last.xaxis.set_minor_locator(NullLocator())
    last.set_xlabel("α (log scale)")
    return fig
