"""Pure functions: arrays and tables -> matplotlib Figures for the paper's figures."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

LOSS_TERMS = [
    "loss", "rec_x", "rec_w", "kl_prior", "kl_cond", "kl_x", "kl_w", "dec_loss", "d_loss",
]  # fmt: skip


def learning_curve(history: pd.DataFrame, title: str = "") -> plt.Figure:
    """Per-epoch mean loss terms (nats): the total on the left, its parts on the right."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9, 3.2))
    ax0.plot(history["epoch"], history["loss"], marker="o", ms=3)
    ax0.set(xlabel="epoch", ylabel="loss (nats)", title=title or "training loss")
    for term in LOSS_TERMS[1:]:
        if term in history:
            ax1.plot(history["epoch"], history[term], marker="o", ms=3, label=term)
    ax1.set(xlabel="epoch", ylabel="nats", yscale="log", title="terms")
    ax1.legend(fontsize=8)
    fig.tight_layout()
    return fig


def latent_scatter(panels: dict[str, tuple[np.ndarray, np.ndarray]], caption: str) -> plt.Figure:
    """2-D latent means coloured by digit: {panel title: (means (N, 2), labels (N,))}."""
    n = len(panels)
    cols = min(n, 4)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    palette = sns.color_palette("tab10", 10)
    for ax, (title, (means, labels)) in zip(axes.flat, panels.items(), strict=False):
        ax.scatter(means[:, 0], means[:, 1], s=2, c=[palette[i] for i in labels], rasterized=True)
        ax.set_title(title, fontsize=9)
        ax.set_aspect("equal", adjustable="datalim")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles = [
        plt.Line2D([], [], ls="", marker="o", color=palette[d], label=str(d)) for d in range(10)
    ]
    fig.legend(handles=handles, loc="center right", title="digit", fontsize=8)
    fig.suptitle(caption, fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.92, 0.95))
    return fig


def image_grid(images: np.ndarray, title: str, row_labels=None) -> plt.Figure:
    """A grid of 28x28 images: images (rows, cols, 784) uint8 or float."""
    rows, cols = images.shape[:2]
    tiles = images.reshape(rows, cols, 28, 28).transpose(0, 2, 1, 3).reshape(rows * 28, cols * 28)
    fig, ax = plt.subplots(figsize=(cols * 0.45 + 0.6, rows * 0.45 + 0.5))
    ax.imshow(tiles, cmap="gray_r", interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks(np.arange(rows) * 28 + 14 if row_labels is not None else [])
    if row_labels is not None:
        ax.set_yticklabels(row_labels)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def alpha_plot(table: pd.DataFrame, labels: dict, zero: dict | None = None) -> plt.Figure:
    """Estimates against alpha (log axis), one line per estimator; JMVAE-zero as dashed lines."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for i, name in enumerate(table.columns):
        color = f"C{i}"
        ax.plot(table.index, table[name], marker="o", color=color, label=labels.get(name, name))
        if zero and name in zero:
            ax.axhline(zero[name], color=color, ls="--", lw=0.8)
    ax.set(xscale="log", xlabel="α", ylabel="nats per test image")
    ax.legend(fontsize=8, title="JMVAE-kl (dashed: JMVAE-zero)", title_fontsize=8)
    fig.tight_layout()
    return fig
