"""Face-image data for a run: the stand-in (generated on first use) or CelebA (book/celeba.md)."""

from __future__ import annotations

from pathlib import Path

from jmvae_core.config import RunConfig
from jmvae_core.data.celeba import CelebAError, load_celeba
from jmvae_core.environment import celeba_dir, data_dir


def standin_dir(cfg: RunConfig, data_root: Path | None = None) -> Path:
    """Where the stand-in of this run's size and seed is generated (under the data dir)."""
    base = Path(data_root if data_root is not None else data_dir())
    return base / f"standin-n{cfg.data.n_images}-s{cfg.data.standin_seed}"


def load_faces(
    cfg: RunConfig, device="cpu", progress: bool = True, data_root=None, celeba_root=None
):  # fmt: skip
    """The run's face data: the stand-in (generated on first use under `data_root`) or real
    CelebA (`celeba_root`); both default to this process's folders (jmvae_core.environment)."""
    from jmvae_core.data.standin import write_standin  # PIL: only where faces are drawn

    d = cfg.data
    if cfg.dataset == "standin":
        root = write_standin(
            standin_dir(cfg, data_root), n=d.n_images, seed=d.standin_seed, progress=progress
        )
        limit = None
    else:
        root, limit = Path(celeba_root if celeba_root is not None else celeba_dir()), d.n_images
    data = load_celeba(
        root,
        crop=d.crop,
        split=d.split,
        seed=d.split_seed,
        test_fraction=d.test_fraction,
        n_train=cfg.train.n_train,
        n_test=cfg.eval.n_test,
        device=device,
        limit=limit,
        progress=progress,
    )
    if data.w_train.shape[1] != cfg.model.w_dim:
        raise CelebAError(
            f"{root}: {data.w_train.shape[1]} attributes, but the run was configured for "
            f"{cfg.model.w_dim}; the attribute file changed after the run was planned"
        )
    return data
