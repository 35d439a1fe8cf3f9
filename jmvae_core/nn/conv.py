"""Convolutional networks and models for 64x64 face images with attributes (book/celeba.md).

Every size scales with `width` (the first conv layer's channels; 64 in the authors' code):
conv channels (w, 2w, 4w, 4w), the joint dense layer 16w (1024), attribute layers 8w (512),
the decoders' first dense layer 64w (4096 = 4w x 4 x 4). Encoders return (mean, variance)
with a softplus variance as on MNIST; decoders are Gaussians of fixed variance 1 and expose
`log_prob`, so the MNIST estimators apply unchanged. Shapes: images (B, 3, 64, 64),
attributes (B, A) in {-1, +1}; `z` may carry leading sample dimensions (..., B, D).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from jmvae_core.config import ModelConfig
from jmvae_core.nn.networks import LOG_2PI, GaussianHead

IMAGE_SHAPE = (3, 64, 64)


def conv_stack(width: int, leaky: bool = False) -> nn.Sequential:
    """64 -> 32 -> 16 -> 8 -> 4 with 4x4 stride-2 convs, BN after all but the first (encoders);
    the discriminator's form (`leaky`) uses LeakyReLU(0.01) and no BN. Output (B, 64 width)."""
    channels = [3, width, 2 * width, 4 * width, 4 * width]
    layers: list[nn.Module] = []
    for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:], strict=True)):
        layers.append(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1))
        if i > 0 and not leaky:
            layers.append(nn.BatchNorm2d(c_out))
        layers.append(nn.LeakyReLU(0.01) if leaky else nn.ReLU(inplace=True))
    return nn.Sequential(*layers, nn.Flatten())


def attribute_mlp(w_dim: int, width: int) -> nn.Sequential:
    """Attributes -> 8w -> 8w (+BN), ReLU: the w branch of q(z|x,w) and the trunk of q(z|w)."""
    hidden = 8 * width
    return nn.Sequential(
        nn.Linear(w_dim, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True),
    )


def _flat(fn, inp: torch.Tensor, event_dims: int) -> torch.Tensor:
    """Apply `fn` to `inp` with any leading sample dimensions folded into the batch."""
    lead = inp.shape[: inp.dim() - event_dims]
    out = fn(inp.reshape(-1, *inp.shape[inp.dim() - event_dims :]))
    return out.reshape(*lead, *out.shape[1:])


class ConvEncoderX(nn.Module):
    """q(z|x): the conv stack -> dense 16w -> (mean, variance)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w = cfg.width
        self.trunk = nn.Sequential(conv_stack(w), nn.Linear(64 * w, 16 * w), nn.ReLU(True))
        self.head = GaussianHead(16 * w, cfg.latent_dim)

    def forward(self, x):
        return self.head(self.trunk(x))


class AttributeEncoder(nn.Module):
    """q(z|w) (and CMMA's p(z|w)): attributes -> 8w -> 8w (+BN) -> (mean, variance)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.trunk = attribute_mlp(cfg.w_dim, cfg.width)
        self.head = GaussianHead(8 * cfg.width, cfg.latent_dim)

    def forward(self, w):
        return self.head(self.trunk(w))


class ConvJointEncoder(nn.Module):
    """q(z|x,w): conv stack (x) and attribute branch (w), concatenated -> dense 16w -> heads."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w = cfg.width
        self.x_branch = conv_stack(w)
        self.w_branch = attribute_mlp(cfg.w_dim, w)
        self.trunk = nn.Sequential(nn.Linear(64 * w + 8 * w, 16 * w), nn.ReLU(True))
        self.head = GaussianHead(16 * w, cfg.latent_dim)

    def forward(self, x, w):
        h = torch.cat([self.x_branch(x), self.w_branch(w)], dim=-1)
        return self.head(self.trunk(h))


class GaussianImageDecoder(nn.Module):
    """p(x|z) (or CVAE's p(x|z,w) with `cond_dim`): dense 64w -> (4w, 4, 4) -> deconvs -> mean.

    The variance is fixed at 1 (book/celeba.md). `image_ll` chooses how the per-pixel terms are
    reduced: "sum" over every pixel and channel, or the code's "channel_mean" (sum over height
    and width, mean over the 3 channels; book/discussion.md).
    """

    def __init__(self, cfg: ModelConfig, cond_dim: int = 0):
        super().__init__()
        w = cfg.width
        self.image_ll = cfg.image_ll
        self.dense = nn.Sequential(
            nn.Linear(cfg.latent_dim + cond_dim, 64 * w), nn.BatchNorm1d(64 * w), nn.ReLU(True)
        )
        channels = [4 * w, 4 * w, 2 * w, w]
        layers: list[nn.Module] = [nn.Unflatten(1, (4 * w, 4, 4))]
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out)]
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.ConvTranspose2d(w, 3, 4, 2, 1))
        self.deconv = nn.Sequential(*layers)

    def mean(self, z: torch.Tensor) -> torch.Tensor:
        """Mean image of p(x|z), G(z) of the GAN: (..., B, D) -> (..., B, 3, 64, 64)."""
        return _flat(lambda h: self.deconv(self.dense(h)), z, 1)

    def log_prob(self, x, z, image_ll: str | None = None) -> torch.Tensor:
        """log N(x; mean(z), I) by `image_ll`: x (B, 3, 64, 64), z (..., B, D) -> (..., B)."""
        per_pixel = -0.5 * ((x - self.mean(z)).pow(2) + LOG_2PI)
        per_channel = per_pixel.sum((-1, -2))
        if (image_ll or self.image_ll) == "channel_mean":
            return per_channel.mean(-1)
        return per_channel.sum(-1)


class ConditionalImageDecoder(nn.Module):
    """CVAE's p(x|z,w): the attribute branch (8w) concatenated with z, then p(x|z)'s layers."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.w_branch = attribute_mlp(cfg.w_dim, cfg.width)
        self.decoder = GaussianImageDecoder(cfg, cond_dim=8 * cfg.width)

    def _input(self, z, w):
        h_w = self.w_branch(w).expand(*z.shape[:-1], -1)
        return torch.cat([z, h_w], dim=-1)

    def mean(self, z, w):
        return self.decoder.mean(self._input(z, w))

    def log_prob(self, x, z, w, image_ll: str | None = None):
        """log p(x|z,w): x (B, 3, 64, 64), z (..., B, D), w (B, A) -> (..., B)."""
        return self.decoder.log_prob(x, self._input(z, w), image_ll)


class AttributeDecoder(nn.Module):
    """p(w|z): dense 64w -> 8w (+BN) -> A, tanh mean; Gaussian of variance 1 (book/celeba.md)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w = cfg.width
        self.net = nn.Sequential(
            nn.Linear(cfg.latent_dim, 64 * w),
            nn.ReLU(True),
            nn.Linear(64 * w, 8 * w),
            nn.BatchNorm1d(8 * w),
            nn.ReLU(True),
            nn.Linear(8 * w, cfg.w_dim),
            nn.Tanh(),
        )

    def mean(self, z):
        """E[w|z] in (-1, 1): (..., B, D) -> (..., B, A)."""
        return _flat(self.net, z, 1)

    def log_prob(self, w, z):
        """log N(w; mean(z), I) summed over attributes: w (B, A), z (..., B, D) -> (..., B)."""
        return (-0.5 * ((w - self.mean(z)).pow(2) + LOG_2PI)).sum(-1)


class Discriminator(nn.Module):
    """D(x) (or D(x, w) for the conditional baselines): conv stack with LeakyReLU, no BN ->
    [concat w] -> dense 16w -> one logit (the sigmoid is applied inside the losses)."""

    def __init__(self, cfg: ModelConfig, conditional: bool):
        super().__init__()
        w = cfg.width
        self.conditional = conditional
        self.features = conv_stack(w, leaky=True)
        n_in = 64 * w + (cfg.w_dim if conditional else 0)
        self.out = nn.Sequential(nn.Linear(n_in, 16 * w), nn.LeakyReLU(0.01), nn.Linear(16 * w, 1))

    def forward(self, x, w=None):
        h = self.features(x)
        if self.conditional:
            h = torch.cat([h, w], dim=-1)
        return self.out(h).squeeze(-1)


class FaceModel(nn.Module):
    """The image variants of book/celeba.md as one class; which parts exist depends on the variant.

    vae_gan: q(z|x), p(x|z); cvae_gan: q(z|x,w), p(x|z,w); cmma_gan: q(z|x,w), p(z|w), p(x|z);
    jmvae_gan (zero) / jmvae_kl_gan / jmvae_kl_face: q(z|x,w), p(x|z), p(w|z), and for the -kl forms
    q(z|x), q(z|w). GAN variants add a discriminator `d` (seeing w for cvae_gan, cmma_gan).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        v = cfg.variant
        kl = v in ("jmvae_kl_face", "jmvae_kl_gan")
        joint = v in ("jmvae_gan", "jmvae_kl_gan", "jmvae_kl_face")
        self.q_z_x = ConvEncoderX(cfg) if v == "vae_gan" or kl else None
        self.q_z_xw = ConvJointEncoder(cfg) if v != "vae_gan" else None
        self.q_z_w = AttributeEncoder(cfg) if kl else None
        self.p_z_w = AttributeEncoder(cfg) if v == "cmma_gan" else None
        self.p_x_zw = ConditionalImageDecoder(cfg) if v == "cvae_gan" else None
        self.p_x_z = GaussianImageDecoder(cfg) if v != "cvae_gan" else None
        self.p_w_z = AttributeDecoder(cfg) if joint else None
        self.d = Discriminator(cfg, v in ("cvae_gan", "cmma_gan")) if v.endswith("_gan") else None

    def infer_from_x(self, x):
        """q(z|x) (VAE, JMVAE-kl) or q(z|x,0) (JMVAE-zero, book/model.md)."""
        if self.q_z_x is not None:
            return self.q_z_x(x)
        return self.q_z_xw(x, x.new_zeros(x.shape[0], self.cfg.w_dim))

    def infer_from_w(self, w):
        """q(z|w) (JMVAE-kl) or q(z|0,w) (JMVAE-zero, book/model.md)."""
        if self.q_z_w is not None:
            return self.q_z_w(w)
        return self.q_z_xw(w.new_zeros(w.shape[0], *IMAGE_SHAPE), w)

    def generate(self, z, w=None):
        """Mean image G(z) of the variant's decoder (p(x|z,w) for CVAE): -> (..., B, 3, 64, 64)."""
        if self.p_x_zw is not None:
            return self.p_x_zw.mean(z, w)
        return self.p_x_z.mean(z)


def log_sigmoid_pair(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log D, log(1 - D)) from the discriminator's logits, computed stably: (B,) -> (B,), (B,)."""
    return F.logsigmoid(logits), F.logsigmoid(-logits)
