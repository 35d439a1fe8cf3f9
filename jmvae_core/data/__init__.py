"""Datasets: MNIST (fetched, verified, binarised), the face images (the drawn stand-in and
CelebA with the authors' crop). Imports only the ground (config, environment, store).

Each dataset is declared once, in DATASETS below: how a run loads it, how it is fetched or
prepared before runs start, whether training re-binarises its images, whether an attribute judge
scores its coherence, and which settings fit it. Its family, DataConfig settings and attribute
names are the configuration's side, config.DATASETS. The rest of the package asks these two
declarations, never a dataset's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from jmvae_core.config import RunConfig
from jmvae_core.data import faces, mnist


def _no_check(cfg: RunConfig) -> None:
    """Face sets: the sizes are known only once the files are read (fit checks the batch)."""


@dataclass(frozen=True)
class Dataset:
    """How a run meets one dataset.

    load(cfg, device, progress, data_root, celeba_root): the run's data (mnist.MNIST or
    celeba.FaceData: x_train, w_train, x_test, w_test, test_hash).
    prepare(cfg, data_root, celeba_root, progress, log): once, before runs start in parallel:
    fetch and verify, generate, or check and crop into the shared cache; returns the data (on
    the CPU) where it loaded it, else None.
    check(cfg): ConfigError unless the settings fit the data, before any file is written.
    binarize: training draws a binary image per batch from the grey levels (MNIST); face images
    are real-valued.
    attribute_judge: coherence is scored by an attribute judge trained on the set (the
    stand-in, whose attributes are drawn exactly).
    """

    load: Callable
    prepare: Callable
    check: Callable[[RunConfig], None] = _no_check
    binarize: bool = False
    attribute_judge: bool = False


def _prepare_faces(cfg, data_root=None, celeba_root=None, progress=True, log=print):
    """The face images generated or cropped into the cache; returns them (on the CPU)."""
    return faces.load_faces(cfg, progress=progress, data_root=data_root, celeba_root=celeba_root)


DATASETS: dict[str, Dataset] = {
    "mnist": Dataset(
        load=mnist.load_run, prepare=mnist.prepare, check=mnist.check_mnist_sizes, binarize=True
    ),
    "standin": Dataset(load=faces.load_faces, prepare=_prepare_faces, attribute_judge=True),
    "celeba": Dataset(load=faces.load_faces, prepare=_prepare_faces),
}


def dataset(cfg: RunConfig) -> Dataset:
    """The declaration of the run's dataset."""
    return DATASETS[cfg.dataset]


def load(cfg: RunConfig, device="cpu", progress: bool = False, data_root=None, celeba_root=None):
    """The run's data, through its dataset's loader (default folders: this process's)."""
    return dataset(cfg).load(cfg, device, progress, data_root, celeba_root)


def check(cfg: RunConfig) -> None:
    """ConfigError unless the run's settings fit the data it will meet (what the CLI checks)."""
    dataset(cfg).check(cfg)
