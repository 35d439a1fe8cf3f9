"""An independent judge of label -> image coherence on MNIST: a small CNN trained on the real
MNIST training images, never on a model's output.

Coherence of a model = the fraction of images it generates from a requested digit that the
judge reads as that digit; chance is 0.1 (ten digits requested equally often). The judge is
trained once per training-set size and cached beside the runs (results/<profile>/digit-judge-*:
its accuracy is a committed result, its weights are not). Training is seeded, so a judge made
again on the same machine and library version is the same judge.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from jmvae_core import environment, store
from jmvae_core.data.mnist import MNIST_MD5, mnist_dir, read_idx, verify

EPOCHS, LR, BATCH, SEED, DECAY = 6, 1e-3, 128, 0, 0.7  # DECAY: lr factor per epoch
SHIFT = 2  # training images are moved by up to this many pixels in each direction
CHANCE = 0.1
WEIGHTS = "judge.pt"
ACCURACY = "accuracy.json"


class DigitJudge(nn.Module):
    """Images (B, 784) in [0, 1] -> ten digit logits: two 3x3 conv + batch-norm + pool blocks,
    one hidden layer with dropout."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Unflatten(1, (1, 28, 28)),
            nn.Conv2d(1, 32, 3), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),  # 26 -> 13
            nn.Conv2d(32, 64, 3), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),  # 11 -> 5
            nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(128, 10),
        )  # fmt: skip

    def forward(self, x):
        return self.net(x)


def judge_dir(profile: str, n_train: int | None, root=None) -> Path:
    """results/<profile>/digit-judge-<hash of the training-set size and the judge's settings>."""
    key = {"n_train": n_train, "judge": [EPOCHS, LR, BATCH, SEED, DECAY, SHIFT, "bn"]}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    base = Path(root if root is not None else environment.results_root())
    return base / profile / f"digit-judge-{digest}"


def _grey_mnist(n_train: int | None, data_root=None) -> tuple[torch.Tensor, ...]:
    """The verified MNIST files as grey images in [0, 1] and integer labels (CPU tensors)."""
    folder = mnist_dir(data_root)
    for name in MNIST_MD5:
        verify(folder / name, name)
    arr = {name: read_idx(folder / name) for name in MNIST_MD5}
    grey = lambda a: torch.from_numpy(a.reshape(-1, 784) / 255.0).float()  # noqa: E731
    labels = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    return (
        grey(arr["train-images-idx3-ubyte"])[:n_train],
        labels(arr["train-labels-idx1-ubyte"])[:n_train],
        grey(arr["t10k-images-idx3-ubyte"]),
        labels(arr["t10k-labels-idx1-ubyte"]),
    )


@torch.no_grad()
def predict(judge: DigitJudge, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    """The digit the judge reads in each image: (N, 784) -> (N,)."""
    judge.eval()
    return torch.cat([judge(x[i : i + batch]).argmax(-1) for i in range(0, x.shape[0], batch)])


def shifted(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by a random whole number of pixels (up to SHIFT) along each axis,
    the border filled with background: (B, 784) -> (B, 784)."""
    b = x.shape[0]
    padded = F.pad(x.view(b, 28, 28), (SHIFT,) * 4)
    dy, dx = torch.randint(0, 2 * SHIFT + 1, (2, b), generator=generator, device=x.device)
    rows = (dy[:, None] + torch.arange(28, device=x.device))[:, :, None]  # (B, 28, 1)
    cols = (dx[:, None] + torch.arange(28, device=x.device))[:, None, :]  # (B, 1, 28)
    return padded[torch.arange(b, device=x.device)[:, None, None], rows, cols].reshape(b, 784)


def train_judge(x: torch.Tensor, y: torch.Tensor, progress: bool = True) -> DigitJudge:
    """Adam on the cross-entropy of the real training images, randomly shifted (seeded); the
    step size shrinks by DECAY after every epoch."""
    torch.manual_seed(SEED)
    judge = DigitJudge().to(x.device)
    opt = torch.optim.Adam(judge.parameters(), lr=LR)
    schedule = torch.optim.lr_scheduler.ExponentialLR(opt, DECAY)
    g = torch.Generator(device=x.device).manual_seed(SEED)
    steps = math.ceil(x.shape[0] / BATCH)
    for _ in tqdm(range(EPOCHS), desc="digit judge", disable=not progress, leave=False):
        judge.train()
        order = torch.randperm(x.shape[0], generator=g, device=x.device)
        for b in range(steps):
            idx = order[b * BATCH : (b + 1) * BATCH]
            loss = F.cross_entropy(judge(shifted(x[idx], g)), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        schedule.step()
    return judge.eval()


def load_or_train(profile: str, n_train: int | None, device, root=None, progress=True):
    """The cached judge for this training-set size (trained and written on first use, under a
    lock so that concurrent runs share it) and its record: test accuracy on the 10,000 real
    (grey) MNIST test images."""
    folder = judge_dir(profile, n_train, root)
    with store.run_lock(folder):
        weights = folder / WEIGHTS
        if store.is_done(folder) and weights.exists():
            judge = DigitJudge().to(device)
            judge.load_state_dict(store.load_torch(weights, device))
            return judge.eval(), store.read_json(folder / ACCURACY)
        x, y, x_test, y_test = _grey_mnist(n_train)
        judge = train_judge(x.to(device), y.to(device), progress)
        correct = predict(judge, x_test.to(device)).cpu() == y_test
        record = {
            "test_accuracy": float(correct.float().mean()),
            "n_test": int(len(y_test)),
            "n_train": int(x.shape[0]),
            "epochs": EPOCHS,
            "lr": LR,
            "batch_size": BATCH,
            "seed": SEED,
            "lr_decay_per_epoch": DECAY,
            "max_shift_px": SHIFT,
            "torch": torch.__version__,
        }
        store.save_torch(weights, judge.state_dict())
        store.write_json(folder / ACCURACY, record)
        store.mark_done(folder)
        return judge, record


def coherence(images: torch.Tensor, judge: DigitJudge) -> dict:
    """Label -> image coherence of images generated per digit, (10, n, 784): the fraction the
    judge reads as requested (overall with its binomial standard error, and per digit)."""
    n_digits, n = images.shape[:2]
    asked = torch.arange(n_digits, device=images.device).repeat_interleave(n)
    hit = (predict(judge, images.reshape(n_digits * n, -1)) == asked).float().cpu()
    p = float(hit.mean())
    return {
        "coherence": p,
        "sem": math.sqrt(p * (1 - p) / len(hit)),
        "n": int(len(hit)),
        "chance": CHANCE,
        "per_digit": hit.view(n_digits, n).mean(1).numpy(),
    }
