"""What the 2-D latent page shows: the latent means of the 2-D runs and how well they separate."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from jmvae_core.pages import plots, results, tables
from jmvae_core.pages.layout import closed, plain

LATENT_PANELS = (
    ("vae", None, "VAE: q(z|x)"),
    ("cvae", "CVAE: q(z|x,w)", None),
    ("jmvae_zero", "JMVAE-zero: q(z|x,w)", "JMVAE-zero: q(z|x,0)"),
    ("jmvae_kl", "JMVAE-kl: q(z|x,w)", "JMVAE-kl: q(z|x)"),
)


def latent_runs(runs: list[dict]) -> list[dict]:
    """The runs with a 2-D latent."""
    return [r for r in runs if r["latent_dim"] == 2]


def latent_panels(runs: list[dict]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{panel title: (test-set latent means (N, 2), digit labels)} of the 2-D latent runs;
    image-only inference beside q(z|x,w) for the JMVAE forms."""
    by = {r["variant"]: r for r in latent_runs(runs)}
    panels = {}
    for variant, title_xw, title_x in LATENT_PANELS:
        if variant not in by:
            continue
        a = results.load_arrays(by[variant])
        if title_xw:
            panels[title_xw] = (a["mean_q_z_xw"], a["labels"])
        if title_x:
            panels[title_x] = (a["mean_q_z_x"], a["labels"])
    return panels


def latent_figure(runs: list[dict], profile: str) -> plt.Figure:
    """The 2-D latent means of the test set, one panel per encoder, coloured by digit."""
    caption = f"test-set latent means, latent size 2 ({profile} profile)"
    return closed(plots.latent_scatter(latent_panels(runs), caption))


def latent_caption(runs: list[dict], profile: str) -> str:
    """tables.caption of the 2-D latent runs: profile, epochs, k, seeds, test images."""
    return tables.caption(latent_runs(runs), profile)


def nearest_mean_accuracy(means: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of points whose nearest class mean (Euclidean, class means of these very
    points) is that of their own class: how well the classes separate in the latent space."""
    classes = np.unique(labels)
    centres = np.stack([means[labels == c].mean(axis=0) for c in classes])
    nearest = classes[((means[:, None, :] - centres[None]) ** 2).sum(-1).argmin(axis=1)]
    return float((nearest == labels).mean())


def latent_separation(runs: list[dict]) -> pd.DataFrame:
    """Per panel: the nearest digit-mean accuracy of the 2-D test means."""
    rows = {
        title: {"nearest digit-mean accuracy": round(nearest_mean_accuracy(m, y), 3)}
        for title, (m, y) in latent_panels(runs).items()
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "encoder"
    return table


def latent_facts(separation: pd.DataFrame) -> dict:
    """The best- and worst-separated panels among the encoders whose z must carry the digit
    (all but CVAE, whose decoder is given the digit), and CVAE's value (None without it)."""
    acc = separation["nearest digit-mean accuracy"]
    cvae = acc[acc.index.str.startswith("CVAE")]
    rest = acc.drop(cvae.index)
    return {
        "best": str(rest.idxmax()),
        "best_accuracy": plain(rest.max()),
        "worst": str(rest.idxmin()),
        "worst_accuracy": plain(rest.min()),
        "cvae_accuracy": plain(cvae.iloc[0]) if len(cvae) else None,
    }
