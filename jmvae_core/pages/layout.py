"""What every result notebook shares: display settings, closed figures, plain values."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def setup_display() -> None:
    """Notebook display settings: whole strings in tables (hashes and run ids are never cut)
    and no missing-glyph warnings from matplotlib in the outputs."""
    pd.set_option("display.max_colwidth", None)
    warnings.filterwarnings("ignore", message="Glyph")


def closed(fig: plt.Figure) -> plt.Figure:
    """A figure removed from pyplot: it is shown where it is glued, not again at cell end."""
    plt.close(fig)
    return fig


def plain(value):
    """A numpy scalar as the Python number `{glue:text}` can format."""
    return value.item() if isinstance(value, np.generic) else value
