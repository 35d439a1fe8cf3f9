"""Figures and face tables from synthetic inputs: the structure a reader needs (panels, labels,
legends in words, sizes that stay legible on the page) and narrow tables with real indexes."""

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from jmvae_core.pages import face_tables as ft
from jmvae_core.pages import plots

LABELS = {
    "joint": "log p(x,w)",
    "marginal": "log p(x)",
    "conditional": "log p(x|w)",
    "pseudo_marginal": "log p(x), single input",
    "pseudo_conditional": "log p(x|w), single input",
}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _texts(fig):
    """(text, fontsize, window extent) of every visible, non-empty text of a drawn figure (tick
    labels only of the ticks drawn, those inside the view limits)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ticks, drawn = set(), set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.majorTicks + axis.minorTicks:
                ticks |= {id(tick.label1), id(tick.label2)}
            for tick in axis._update_ticks():
                drawn |= {id(tick.label1), id(tick.label2)}
    return [
        (t.get_text(), t.get_fontsize(), t.get_window_extent(renderer))
        for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip() and (id(t) not in ticks or id(t) in drawn)
    ]


def _assert_no_overlap(texts):
    for (a, _, ba), (b, _, bb) in itertools.combinations(texts, 2):
        shrunk = ba.shrunk(0.98, 0.98)
        assert not shrunk.overlaps(bb.shrunk(0.98, 0.98)), f"{a!r} overlaps {b!r}"


def _data_axes(fig):
    """The figure's axes other than colour bars."""
    return [ax for ax in fig.axes if not hasattr(ax, "_colorbar")]


def _legend_texts(fig):
    legends = [ax.get_legend() for ax in fig.axes] + list(fig.legends)
    return [t.get_text() for lg in legends if lg is not None for t in lg.get_texts()]


def test_styled_restores_only_the_font_sizes():
    """A setting changed while a figure is drawn (IPython switching interactive mode on when the
    first figure picks the inline backend) survives; the font sizes are restored."""
    size, interactive = matplotlib.rcParams["font.size"], matplotlib.is_interactive()

    @plots.styled
    def draw():
        assert matplotlib.rcParams["font.size"] == plots.FONT["font.size"]
        matplotlib.interactive(not interactive)

    try:
        draw()
        assert matplotlib.is_interactive() is (not interactive)
        assert matplotlib.rcParams["font.size"] == size
    finally:
        matplotlib.interactive(interactive)


# --- alpha_plot ------------------------------------------------------------------------------


def _alpha_table():
    return pd.DataFrame(
        {
            "joint": [-93.8, -94.3, -100.0],
            "marginal": [-93.7, -94.2, -99.9],
            "conditional": [-91.5, -91.9, -97.6],
            "pseudo_marginal": [-93.6, -94.0, -100.0],
            "pseudo_conditional": [-166.9, -161.3, -140.1],
        },
        index=pd.Index([0.01, 0.1, 1.0], name="alpha"),
    )


ZERO = {
    "joint": -94.0, "marginal": -93.9, "conditional": -91.7,
    "pseudo_marginal": -104.7, "pseudo_conditional": -417.5,
}  # fmt: skip


def test_alpha_plot_has_two_panels_with_their_own_y_ranges():
    fig = plots.alpha_plot(_alpha_table(), LABELS, ZERO)
    both, single = fig.axes
    assert both.get_ylim() != single.get_ylim()
    lo, hi = both.get_ylim()
    assert lo > -110 and hi < -85  # the three both-input curves fill their panel
    lo, hi = single.get_ylim()
    # JMVAE-zero's far-below curve (-417.5) does not squash the single-input curves ...
    assert lo > -250 and hi < -85
    # ... and is named, with its value, at the panel's edge
    notes = [t.get_text() for t in single.texts]
    assert any("417.5" in n and "JMVAE-zero" in n for n in notes), notes


def test_alpha_plot_labels_axes_and_names_the_curves_in_words():
    fig = plots.alpha_plot(_alpha_table(), LABELS, ZERO)
    top, bottom = fig.axes  # one above the other, sharing the alpha axis
    assert top.get_shared_x_axes().joined(top, bottom)
    assert "α" in bottom.get_xlabel() and bottom.get_xscale() == "log"
    assert [t.get_text() for t in bottom.get_xticklabels()] == ["0.01", "0.1", "1"]
    assert not bottom.xaxis.get_minorticklocs().size
    for ax in fig.axes:
        assert "nats" in ax.get_ylabel()
        assert ax.get_title(loc="left")  # which estimators the panel shows
    names = _legend_texts(fig)
    assert set(LABELS.values()) <= set(names)
    assert not set(LABELS) & set(names)  # no code names
    # JMVAE-zero references within reach are dashed lines in the estimator's colour
    dashed = [ln for ln in top.lines if ln.get_linestyle() == "--"]
    assert len(dashed) == 3
    assert fig.get_size_inches()[0] >= 6 and fig.dpi >= 100
    _assert_no_overlap(_texts(fig))


def test_alpha_plot_without_zero_and_with_both_inputs_only():
    fig = plots.alpha_plot(_alpha_table()[["joint", "marginal"]], LABELS)
    assert len(fig.axes) == 1
    assert {"log p(x,w)", "log p(x)"} <= set(_legend_texts(fig))


# --- latent_scatter --------------------------------------------------------------------------


def _panels(n):
    rng = np.random.default_rng(0)
    return {
        f"model {i}: q(z|x)": (rng.normal(size=(200, 2)), rng.integers(0, 10, 200))
        for i in range(n)
    }


@pytest.mark.parametrize("n", [1, 4, 5, 6, 7])
def test_latent_scatter_draws_only_the_given_panels_with_labelled_axes(n):
    fig = plots.latent_scatter(_panels(n), "caption")
    axes = _data_axes(fig)
    assert len(axes) == n  # no empty panels
    for ax in axes:
        assert ax.get_visible() and ax.collections  # every panel shows points
        assert "z" in ax.get_xlabel() and "1" in ax.get_xlabel()
        assert "z" in ax.get_ylabel() and "2" in ax.get_ylabel()
        assert ax.get_title()
    width, _ = fig.get_size_inches()
    assert width >= 6 and fig.dpi >= 100
    _assert_no_overlap(_texts(fig))


def test_latent_scatter_has_a_colour_key_for_the_ten_digits():
    fig = plots.latent_scatter(_panels(6), "caption")
    bars = [ax for ax in fig.axes if hasattr(ax, "_colorbar")]
    assert len(bars) == 1
    bar = bars[0]._colorbar
    assert list(bar.get_ticks()) == list(range(10))
    assert bar.ax.get_ylabel() == "digit"


# --- learning_curve --------------------------------------------------------------------------


def _history(columns):
    epochs = np.arange(1, 6)
    return pd.DataFrame({"epoch": epochs, **{c: 10.0 / epochs + 1 for c in columns}})


JMVAE_KL_COLUMNS = ["beta", "alpha_scale", "rec_x", "rec_w", "kl_prior", "kl_x", "kl_w", "loss"]


def test_learning_curve_names_terms_in_words():
    fig = plots.learning_curve(_history([*JMVAE_KL_COLUMNS, "time_s"]), title="JMVAE-kl")
    names = _legend_texts(fig)
    assert not set(names) & set(plots.LOSS_TERMS)
    assert not any("_" in n for n in names), names
    assert "reconstruction of x (nats)" in names and "reconstruction of w" in names
    assert {"KL(q(z|x,w) ‖ p(z))", "KL(q(z|x,w) ‖ q(z|x))", "KL(q(z|x,w) ‖ q(z|w))"} <= set(names)
    assert "loss (negative bound)" in names
    assert "beta" not in names and "time_s" not in names
    for ax in fig.axes:
        assert ax.get_xlabel() == "epoch" and "nats" in ax.get_ylabel()
    assert fig.get_size_inches()[0] >= 6 and fig.dpi >= 100
    _assert_no_overlap(_texts(fig))


def test_learning_curve_of_an_image_only_model_and_of_the_gan_forms():
    fig = plots.learning_curve(_history(["loss", "rec_x", "kl_prior"]), variant="vae")
    assert "KL(q(z|x) ‖ p(z))" in _legend_texts(fig)
    gan = ["loss", "rec_x", "kl_cond", "kl_prior", "dec_loss", "d_loss"]
    names = _legend_texts(plots.learning_curve(_history(gan)))
    assert not set(names) & set(plots.LOSS_TERMS)
    assert "KL(q(z|x,w) ‖ p(z|w))" in names


# --- image grids -----------------------------------------------------------------------------


@pytest.mark.parametrize("rows,cols,labels", [(10, 8, range(10)), (4, 10, None), (2, 3, None)])
def test_image_grid_is_wide_and_its_labels_legible(rows, cols, labels):
    images = np.random.default_rng(0).integers(0, 255, (rows, cols, 784), dtype=np.uint8)
    fig = plots.image_grid(images, "a title", row_labels=labels)
    width, _ = fig.get_size_inches()
    assert width >= 6 and fig.dpi >= 100
    if cols >= 10:
        assert width >= 11  # a full-width figure
    texts = _texts(fig)
    assert all(size >= 10 for _, size, _ in texts)
    if labels is not None:
        ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
        assert ticks == [str(i) for i in labels]
    _assert_no_overlap(texts)


ATTRIBUTES = [
    "Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Eyeglasses", "Gray_Hair",
    "Heavy_Makeup", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "Pale_Skin",
    "Smiling", "Wearing_Hat", "Wearing_Lipstick",
]  # fmt: skip
MODELS = ["JMVAE-kl-GAN", "JMVAE-GAN (zero)", "JMVAE-kl (no GAN)", "CMMA-GAN", "CVAE-GAN"]


def _faces(n):
    return np.random.default_rng(0).integers(0, 255, (n, 64, 64, 3), dtype=np.uint8)


def test_attribute_face_grid_is_wide_with_readable_names_and_no_overlaps():
    names = [a.replace("_", " ") for a in ATTRIBUTES]
    fig = ft.face_grid(
        _faces(16 * 5), 16, "Average face per attribute", col_labels=names, row_labels=MODELS
    )
    width, _ = fig.get_size_inches()
    assert width >= 11 and fig.dpi >= 100
    texts = _texts(fig)
    assert all(size >= 10 for _, size, _ in texts)
    shown = " ".join(t.replace("\n", " ") for t, _, _ in texts)
    assert all(name in shown for name in names + MODELS)
    _assert_no_overlap(texts)
    # every face is drawn, and no axes is left empty
    assert sum(len(ax.images) for ax in fig.axes) == 16 * 5
    assert all(ax.images for ax in fig.axes)


@pytest.mark.parametrize("n,ncols", [(80, 8), (28, 7), (5, 3)])
def test_face_grid_other_layouts(n, ncols):
    labels = [f"row {i}\nq(z|x,w)" for i in range(-(-n // ncols))]
    fig = ft.face_grid(_faces(n), ncols, "Reconstructions", row_labels=labels)
    assert fig.get_size_inches()[0] >= 6 and fig.dpi >= 100
    assert sum(len(ax.images) for ax in fig.axes) == n
    texts = _texts(fig)
    assert all(size >= 10 for _, size, _ in texts)
    _assert_no_overlap(texts)


# --- face tables -----------------------------------------------------------------------------


def _face_runs(tmp_path):
    """Runs of three variants with estimators, attributes.csv and coherence.csv."""
    attrs = ["Bald", "Male", "Smiling"]
    runs = []
    for i, variant in enumerate(["vae_gan", "cvae_gan", "jmvae_kl_gan"]):
        folder = tmp_path / variant
        folder.mkdir()
        applies = {"vae_gan": ["marginal"], "cvae_gan": ["conditional"]}
        names = applies.get(variant, list(ft.COLUMNS))
        estimators = {
            n + suffix: {"mean": -13000.0 - 10 * i - j, "sem": 45.678}
            for j, n in enumerate(names)
            for suffix in ("", "_channel_mean")
        }
        runs.append({"variant": variant, "estimators": estimators, "path": str(folder),
                     "alpha": None, "seed": 1, "latent_dim": 128, "test_hash": "h"})  # fmt: skip
        if variant != "vae_gan":
            pd.DataFrame(
                {"attribute": attrs, "coherence": [0.9, 0.71234, 0.6], "chance": [0.5, 0.5, 0.4]}
            ).to_csv(folder / "coherence.csv", index=False)
            pd.DataFrame(
                {"attribute": attrs, "accuracy": [0.91234, 0.8, 0.7], "auc": [0.95, 0.9, 0.6],
                 "positive_rate": [0.2, 0.5, 0.45]}
            ).to_csv(folder / "attributes.csv", index=False)  # fmt: skip
    return runs


def test_table2_is_narrow_and_keeps_every_cell(tmp_path):
    runs = _face_runs(tmp_path)
    t = ft.table2(runs)
    assert list(t.columns) == ["plain sum", "channel mean (code)", "paper (Table 2)"]
    assert t.index.names == ["estimate, proposal", "model"]
    assert len(t) == len(ft.COLUMNS) * len(runs)
    assert t.loc[("log p(x), q(z|x,w)", "VAE-GAN"), "plain sum"] == "-13000.0 ± 45.7"
    assert t.loc[("log p(x|w), q(z|x,w)", "VAE-GAN"), "plain sum"] == "—"
    assert t.loc[("log p(x|w), q(z|x,w)", "CVAE-GAN"), "channel mean (code)"] == "-13010.0 ± 45.7"
    assert (t["paper (Table 2)"] == "not available").all()
    # one decimal: the standard errors are far above 0.1
    assert all(len(c.split(" ± ")[0].split(".")[1]) <= 2 for c in t["plain sum"] if c != "—")


def test_coherence_table_is_narrow_rounded_and_plots(tmp_path):
    runs = _face_runs(tmp_path)
    t = ft.coherence_table(runs)
    assert list(t.columns) == ["CVAE-GAN", "JMVAE-kl-GAN"]
    assert t.index.names == ["attribute", "measure"]
    assert list(t.index) == [
        (a, m) for a in ["Bald", "Male", "Smiling"] for m in ["coherence", "chance"]
    ]
    assert t.loc[("Male", "coherence"), "CVAE-GAN"] == 0.712
    assert t.loc[("Smiling", "chance"), "JMVAE-kl-GAN"] == 0.4
    fig = ft.coherence_plot(t, "JMVAE-kl-GAN", "coherence")
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights == pytest.approx([0.9, 0.712, 0.6, 0.5, 0.5, 0.4])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["Bald", "Male", "Smiling"]
    assert ft.coherence_table(runs[:1]).empty


def test_attribute_table_and_claim4_have_meaningful_indexes(tmp_path):
    runs = _face_runs(tmp_path)
    t = ft.attribute_table(runs)
    assert t.index.name == "attribute" and list(t.index) == ["Bald", "Male", "Smiling"]
    assert t.loc["Bald", ("CVAE-GAN", "accuracy")] == 0.912
    assert t.loc["Male", ("test set", "positive rate")] == 0.5
    claim = ft.claim4(runs)
    assert not isinstance(claim.index, pd.RangeIndex)
    assert claim.index.names == ["JMVAE form", "against"]
    assert {"estimate", "JMVAE", "baseline", "Δ ± SE", "JMVAE better"} <= set(claim.columns)
    assert len(claim) == 6
    # JMVAE-kl-GAN vs VAE-GAN: -13020 - (-13000) = -20 nats, SE hypot(45.678, 45.678)
    row = claim.loc[("JMVAE-kl-GAN", "VAE-GAN")]
    assert row["Δ ± SE"] == "-20.0 ± 64.6" and row["JMVAE better"] == "not resolved"
    assert claim.loc[("JMVAE-GAN (zero)", "VAE-GAN"), "JMVAE better"] == "not available"
