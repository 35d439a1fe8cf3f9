"""The paper's MNIST models (book/model.md): networks only, no losses inside.

Every encoder returns (mean, variance) of a diagonal Gaussian; decoders expose `log_prob`.
"""

from __future__ import annotations

import torch
from torch import nn

from . import registry
from .config import ModelConfig
from .networks import (
    BernoulliMLP,
    CategoricalMLP,
    ConditionalBernoulliMLP,
    GaussianMLP,
    JointGaussianMLP,
    glorot_,
)


class VAE(nn.Module):
    """Image-only VAE: q(z|x), p(x|z), prior N(0, I)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.q_z_x = GaussianMLP(cfg.x_dim, cfg.hidden, cfg.latent_dim)
        self.p_x_z = BernoulliMLP(cfg.latent_dim, cfg.hidden, cfg.x_dim)

    def infer_from_x(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x), under the name every model uses for image-only inference."""
        return self.q_z_x(x)


class CVAE(nn.Module):
    """Conditional VAE: q(z|x,w), p(x|z,w), prior N(0, I)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.q_z_xw = JointGaussianMLP(cfg.x_dim, cfg.w_dim, cfg.hidden, cfg.latent_dim)
        self.p_x_zw = ConditionalBernoulliMLP(cfg.latent_dim, cfg.w_dim, cfg.hidden, cfg.x_dim)


class CMMA(nn.Module):
    """CMMA (Pandey & Dukkipati 2016): q(z|x,w), learned conditional prior p(z|w), p(x|z)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.q_z_xw = JointGaussianMLP(cfg.x_dim, cfg.w_dim, cfg.hidden, cfg.latent_dim)
        self.p_z_w = GaussianMLP(cfg.w_dim, cfg.hidden, cfg.latent_dim)
        self.p_x_z = BernoulliMLP(cfg.latent_dim, cfg.hidden, cfg.x_dim)


class JMVAE(nn.Module):
    """JMVAE: q(z|x,w), p(x|z), p(w|z); with `unimodal`, also q(z|x) and q(z|w) (JMVAE-kl)."""

    def __init__(self, cfg: ModelConfig, unimodal: bool):
        super().__init__()
        self.cfg = cfg
        self.q_z_xw = JointGaussianMLP(cfg.x_dim, cfg.w_dim, cfg.hidden, cfg.latent_dim)
        self.p_x_z = BernoulliMLP(cfg.latent_dim, cfg.hidden, cfg.x_dim)
        self.p_w_z = CategoricalMLP(cfg.latent_dim, cfg.hidden, cfg.w_dim)
        self.q_z_x = GaussianMLP(cfg.x_dim, cfg.hidden, cfg.latent_dim) if unimodal else None
        self.q_z_w = GaussianMLP(cfg.w_dim, cfg.hidden, cfg.latent_dim) if unimodal else None

    def infer_from_x(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Single-input inference: q(z|x) (JMVAE-kl) or q(z|x,0) (JMVAE-zero, book/model.md)."""
        if self.q_z_x is not None:
            return self.q_z_x(x)
        return self.q_z_xw(x, x.new_zeros(x.shape[0], self.cfg.w_dim))

    def infer_from_w(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Single-input inference: q(z|w) (JMVAE-kl) or q(z|0,w) (JMVAE-zero, book/model.md)."""
        if self.q_z_w is not None:
            return self.q_z_w(w)
        return self.q_z_xw(w.new_zeros(w.shape[0], self.cfg.x_dim), w)


# the paper's five models (registered by variants/paper.py); build_model reads the registry
MODEL_BUILDERS = {
    "vae": VAE,
    "cvae": CVAE,
    "cmma": CMMA,
    "jmvae_zero": lambda cfg: JMVAE(cfg, unimodal=False),
    "jmvae_kl": lambda cfg: JMVAE(cfg, unimodal=True),
}


def build_model(cfg: ModelConfig) -> nn.Module:
    """Instantiate the variant named in `cfg` (its registry entry, MNIST or face family) with
    Glorot-uniform weights and zero biases. The model carries its declaration as `model.spec`
    (registry.ModelSpec), which training, the estimators and generation read."""
    spec = registry.spec(cfg.variant)
    model = glorot_(spec.build(cfg))
    model.spec = spec
    return model
