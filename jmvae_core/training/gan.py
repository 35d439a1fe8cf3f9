"""The GAN training step of book/celeba.md: three Adam updates per batch.

(1) the encoders (and p(w|z)) on the variant's VAE-family loss; (2) the image decoder on
-log p(x|z_q) - log D(G(z_p)) - log D(G(z_q)); (3) the discriminator on
-log D(x) - log(1 - D(G(z_p))) - log(1 - D(G(z_q))). G(z) is the mean of p(x|z),
z_q ~ q(z|x,w) (q(z|x) for the VAE), z_p ~ Uniform(-1, 1)^D as in the authors' code.
"""

from __future__ import annotations

import torch

from jmvae_core.nn.conv import log_sigmoid_pair
from jmvae_core.nn.networks import draw_noise


def parameter_groups(model) -> dict[str, list[torch.nn.Parameter]]:
    """{'enc': encoders and p(w|z), 'dec': the image decoder, 'disc': D} for a GAN variant."""
    decoder = model.p_x_zw if model.p_x_zw is not None else model.p_x_z
    dec = {id(p) for p in decoder.parameters()}
    disc = {id(p) for p in model.d.parameters()}
    enc = [p for p in model.parameters() if id(p) not in dec and id(p) not in disc]
    return {"enc": enc, "dec": list(decoder.parameters()), "disc": list(model.d.parameters())}


def _z_q(model, x, w, generator):
    """A draw from the variant's inference network, cut from the encoders' graph."""
    with torch.no_grad():
        q = model.q_z_x(x) if model.q_z_xw is None else model.q_z_xw(x, w)
        return q.sample(generator)


def _update(loss, params, optimizer, clip) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward(inputs=params)  # only this group's gradients are needed
    clip(params)
    optimizer.step()


def gan_step(model, optimizers, x, w, generator, beta, alpha_scale, clip) -> dict:
    """One batch of the three updates; returns the batch-mean terms (scalars, nats)."""
    groups = parameter_groups(model)
    objective = model.spec.objective  # the VAE-family loss of update (1)
    eps = draw_noise(generator, x, model.cfg.latent_dim)
    terms = objective(model, x, w, eps, beta, model.cfg.alpha * alpha_scale)
    _update(terms["loss"], groups["enc"], optimizers["enc"], clip)

    z_q = _z_q(model, x, w, generator)
    z_p = torch.rand(z_q.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1
    cond = w if model.p_x_zw is not None else None
    fake_q, fake_p = model.generate(z_q, cond), model.generate(z_p, cond)
    d_w = w if model.d.conditional else None
    if model.p_x_zw is not None:
        rec = -model.p_x_zw.log_prob(x, z_q, w).mean()
    else:
        rec = -model.p_x_z.log_prob(x, z_q).mean()
    log_d_q, _ = log_sigmoid_pair(model.d(fake_q, d_w))
    log_d_p, _ = log_sigmoid_pair(model.d(fake_p, d_w))
    dec_loss = rec - log_d_p.mean() - log_d_q.mean()
    _update(dec_loss, groups["dec"], optimizers["dec"], clip)

    log_real, _ = log_sigmoid_pair(model.d(x, d_w))
    _, log_not_q = log_sigmoid_pair(model.d(fake_q.detach(), d_w))
    _, log_not_p = log_sigmoid_pair(model.d(fake_p.detach(), d_w))
    d_loss = -log_real.mean() - log_not_p.mean() - log_not_q.mean()
    _update(d_loss, groups["disc"], optimizers["disc"], clip)
    return {
        **{k: v.detach() for k, v in terms.items()},
        "dec_loss": dec_loss.detach(),
        "d_loss": d_loss.detach(),
        "d_real": log_real.exp().mean().detach(),
        "d_fake": log_d_p.exp().mean().detach(),
    }
