"""A plain PyTorch training loop of the authors' MNIST JMVAE-kl, written the ordinary way.

It is the yardstick for `jmvae_core.training.fit.fit` ("no slower than a plain loop"): the same
architecture, batch 100, Adam(eps=1e-4), clipping, per-epoch re-binarisation and in-memory
data, but no project code. Run through `benchmarks/epoch_speed.py`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _mlp(*sizes):
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    def __init__(self, trunk, hidden=512, latent=64):
        super().__init__()
        self.trunk, self.mu, self.var = trunk, nn.Linear(hidden, latent), nn.Linear(hidden, latent)

    def forward(self, h):
        h = self.trunk(h)
        return self.mu(h), F.softplus(self.var(h))


class PlainJMVAE(nn.Module):
    def __init__(self, alpha=0.1):
        super().__init__()
        self.alpha = alpha
        self.x_in, self.w_in = _mlp(784, 512), _mlp(10, 512)
        self.q_xw = Encoder(_mlp(1024, 512))
        self.q_x = Encoder(_mlp(784, 512, 512))
        self.q_w = Encoder(_mlp(10, 512, 512))
        self.p_x = nn.Sequential(_mlp(64, 512, 512), nn.Linear(512, 784))
        self.p_w = nn.Sequential(_mlp(64, 512, 512), nn.Linear(512, 10))

    def loss(self, x, w):
        mu, var = self.q_xw(torch.cat([self.x_in(x), self.w_in(w)], 1))
        q = torch.distributions.Normal(mu, var.sqrt())
        z = q.rsample()
        rec_x = F.binary_cross_entropy_with_logits(self.p_x(z), x, reduction="sum") / len(x)
        rec_w = F.cross_entropy(self.p_w(z), w.argmax(1))
        prior = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
        kl = torch.distributions.kl_divergence(q, prior).sum(1).mean()
        kl_x = torch.distributions.kl_divergence(q, _normal(*self.q_x(x))).sum(1).mean()
        kl_w = torch.distributions.kl_divergence(q, _normal(*self.q_w(w))).sum(1).mean()
        return rec_x + rec_w + kl + self.alpha * (kl_x + kl_w)


def _normal(mu, var):
    return torch.distributions.Normal(mu, var.sqrt())


def train_epoch(model, optimizer, x_train, w_train, batch_size=100):
    """One epoch: shuffle, re-binarise each batch, step with norm-5 then +-1 clipping."""
    perm = torch.randperm(len(x_train))
    total = 0.0
    for i in range(0, len(x_train) - batch_size + 1, batch_size):
        idx = perm[i : i + batch_size]
        x = torch.bernoulli(x_train[idx])
        loss = model.loss(x, w_train[idx])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        torch.nn.utils.clip_grad_value_(model.parameters(), 1.0)
        optimizer.step()
        total += loss.item()
    return total / (len(x_train) // batch_size)


def make(alpha=0.1, seed=1):
    torch.manual_seed(seed)
    model = PlainJMVAE(alpha)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-4)
