"""Importance-sampled log-likelihoods of book/model.md, vectorised over examples, chunked over k.

Every estimate is log p_hat = logmeanexp_k(log-weight_k), one value per example (shape (B,),
float64 nats). Estimators that share a proposal share its samples: `joint`, `marginal` and
`conditional` of JMVAE are all computed from one set of k draws from q(z|x,w). Each MNIST
model's table of estimators and its proposals come from its declaration (`model.spec`, a
models.declaration.ModelSpec). A proposal is a diagonal Gaussian (networks.Gaussian) or a
mixture of them (posteriors.Mixture), drawn from stratified: log p_hat = log sum_m pi_m
mean_j(weight_mj), component by component.
"""

from __future__ import annotations

import contextlib
import functools
import math
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from jmvae_core.models.declaration import PROPOSALS
from jmvae_core.nn.networks import Gaussian, log_std_normal
from jmvae_core.nn.posteriors import Mixture


def _densities(model, x, w) -> dict:
    """Log-density terms as functions of z (..., B, D) -> (..., B), built lazily per batch."""

    def pz_w(z):
        return model.p_z_w(w).log_prob(z)

    terms = {
        "px": lambda z: model.p_x_z.log_prob(x, z),
        "pw": lambda z: model.p_w_z.log_prob(w, z),
        "pz": log_std_normal,
        "px_w": lambda z: model.p_x_zw.log_prob(x, z, w),
        "pz_w": pz_w,
    }
    if _is_image_model(model):  # the image terms in both conventions, named explicitly
        terms |= {
            "px": lambda z: model.p_x_z.log_prob(x, z, "sum"),
            "px_cm": lambda z: model.p_x_z.log_prob(x, z, "channel_mean"),
            "px_w": lambda z: model.p_x_zw.log_prob(x, z, w, "sum"),
            "px_w_cm": lambda z: model.p_x_zw.log_prob(x, z, w, "channel_mean"),
        }
    return terms


def _is_image_model(model) -> bool:
    return model.spec.family == "faces"


def spec_of(model) -> dict:
    """The estimator table of a model (its declaration: book/model.md, book/celeba.md)."""
    return model.spec.estimators


def proposals_of(model) -> dict:
    """Proposal name -> (model, x, w) -> its distribution, for this model's estimators."""
    return model.spec.proposals or PROPOSALS


PRECISIONS = ("auto", "fp32", "bf16")
# the terms whose decoders may run in bfloat16: the Bernoulli and categorical MLPs. Gaussian
# terms (CMMA's p(z|w)) stay in float32: a rounded mean over a small variance moved CMMA's
# conditional estimate by 0.10 nats (quick CMMA, 500 test images)
BF16_TERMS = ("px", "pw", "px_w")


@functools.cache
def _cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX-512 BF16 or AMX; Linux flags)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: stay in float32
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, model, device) -> str:
    """The precision ("fp32" or "bf16") of the estimators' decoders (Performance chapter).

    "auto" is "bf16" for the MNIST MLPs on a CPU that multiplies bfloat16 natively (AVX-512
    BF16 or AMX) and "fp32" otherwise: on CUDA (not yet measured there; the GPU study script
    measures it on its own runs and decides) and always for the face models, whose Gaussian
    image terms were not measured. The study's rule: bfloat16 may serve only where it moves
    a mean estimate by less than 0.1 nats. Measured on a 2-core AVX-512 BF16 CPU
    (benchmarks/estimator_precision.py: one 3-epoch run per variant, 500 test images,
    k = 1000, the same draws; bf16 - fp32 per image): every estimator within 0.002 nats
    (standard errors 0.001-0.004) except JMVAE-zero's pseudo_conditional, +0.052 +- 0.009
    (an independent check found +0.071 +- 0.012 on 250 images): all below 0.1, not all as
    small as first reported (0.009). The k = 1000 marginal over 10,000 images ran 1.7x
    faster (benchmarks/speed.py).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision != "auto":
        return precision
    device = torch.device(device)
    if not model.spec.bf16_estimators:
        return "fp32"  # not measured for these models
    return "bf16" if device.type == "cpu" and _cpu_has_native_bf16() else "fp32"


def _decoder_precision(device: torch.device, precision: str):
    """Autocast for the decoders: bfloat16 matmuls ("bf16"; log-density sums stay float32),
    float32 inside a bfloat16 region ("off"), or no change ("fp32")."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def log_mean_exp(a: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """log(mean(exp(a))) along `dim`, computed stably in float64."""
    a = a.double()
    return torch.logsumexp(a, dim=dim) - math.log(a.shape[dim])


def draw(
    q: Gaussian, log_terms: dict, k: int, generator=None, max_rows: int = 4096, precision="fp32",
    log_q=None,
) -> dict:  # fmt: skip
    """k draws z ~ q per example; each log term and log q at them: -> {name: (B, k)}.

    q: a diagonal Gaussian of shape (B, D). The k draws are made in chunks of at most
    `max_rows` decoder rows; the log terms (decoders) run in `precision` ("fp32" or "bf16",
    see resolve_precision). `log_q` (z -> (..., B)) is the proposal's log-density, by default
    q's own; a mixture passes its own when it draws one component.
    """
    batch, device = q.mu.shape[0], q.mu.device
    chunk = max(1, min(k, max_rows // batch))
    out: dict[str, list] = {name: [] for name in [*log_terms, "q"]}
    log_q = q.log_prob if log_q is None else log_q
    # one autocast region for all chunks: it casts each weight to bfloat16 once, not per chunk
    with _decoder_precision(device, precision):
        for start in range(0, k, chunk):
            z = q.sample(generator, min(chunk, k - start))
            out["q"].append(log_q(z).double())
            for name, fn in log_terms.items():
                with _decoder_precision(device, precision if name in BF16_TERMS else "off"):
                    out[name].append(fn(z).double())
    return {name: torch.cat(parts, dim=0).T for name, parts in out.items()}


def log_p_w(
    model, w, n_prior: int, generator=None, max_rows: int = 262144, precision="fp32"
) -> torch.Tensor:
    """log p_hat(w) = logmeanexp over n_prior draws z ~ N(0, I) of log p(w|z): (B, W) -> (B,).

    One set of prior draws serves every example of the batch (the decoder runs n_prior times).
    """
    batch = w.shape[0]
    chunk = max(1, min(n_prior, max_rows // batch))
    parts = []
    for start in range(0, n_prior, chunk):
        kc = min(chunk, n_prior - start)
        z = torch.randn(
            (kc, 1, model.cfg.latent_dim), generator=generator, device=w.device, dtype=w.dtype
        )
        with _decoder_precision(w.device, precision):
            parts.append(model.p_w_z.log_prob(w, z).double())
    return log_mean_exp(torch.cat(parts, dim=0), dim=0)


def draw_mixture(q: Mixture, log_terms: dict, k: int, generator=None, max_rows=4096,
                 precision="fp32") -> tuple[dict, torch.Tensor]:  # fmt: skip
    """k draws from a mixture, stratified (Mixture.draws): component after component, each
    log term and the mixture's log-density at them -> ({name: (B, k)}, log coefficients (k,)),
    where log p_hat = logsumexp_k(log-weight_k + coefficient_k)."""
    parts, coefs = [], []
    for component, n, log_coef in q.draws(k):
        parts.append(draw(component, log_terms, n, generator, max_rows, precision, q.log_prob))
        coefs.append(torch.full((n,), log_coef, dtype=torch.float64, device=component.mu.device))
    out = {name: torch.cat([p[name] for p in parts], dim=1) for name in parts[0]}
    return out, torch.cat(coefs)


@torch.no_grad()
def estimate(
    model, x, w, names=None, k=1000, n_prior=5000, generator=None, max_rows=4096,
    precision="fp32",
):  # fmt: skip
    """Per-example log-likelihood estimates of book/model.md: x (B, X), w (B, W) -> {name: (B,)}.

    `names` defaults to every estimator of the model's variant; an unknown name is an error.
    `precision` ("fp32"/"bf16"/"auto") applies to the decoders (resolve_precision).
    """
    precision = resolve_precision(precision, model, x.device)
    spec = spec_of(model)
    names = tuple(spec) if names is None else tuple(names)
    unknown = [n for n in names if n not in spec]
    if unknown:
        raise ValueError(
            f"estimator(s) {unknown} do not apply to variant {model.cfg.variant!r}; "
            f"available: {', '.join(spec)}"
        )
    densities = _densities(model, x, w)
    proposals = proposals_of(model)
    needed: dict[str, set] = {}
    for n in names:
        proposal, terms, _ = spec[n]
        needed.setdefault(proposal, set()).update(terms)
    draws, coefs = {}, {}
    for proposal, terms in needed.items():
        q = proposals[proposal](model, x, w)
        log_terms = {t: densities[t] for t in sorted(terms)}
        if isinstance(q, Mixture):
            draws[proposal], coefs[proposal] = draw_mixture(
                q, log_terms, k, generator, max_rows, precision
            )
        else:  # a diagonal Gaussian
            draws[proposal] = draw(q, log_terms, k, generator, max_rows, precision)
    log_pw = None
    if any(spec[n][2] for n in names):
        log_pw = log_p_w(model, w, n_prior, generator, precision=precision)
    out = {}
    for n in names:
        proposal, terms, conditional = spec[n]
        d = draws[proposal]
        log_w = sum(d[t] for t in terms) - d["q"]
        if proposal in coefs:
            log_p = torch.logsumexp(log_w + coefs[proposal], dim=-1)
        else:
            log_p = log_mean_exp(log_w)
        out[n] = log_p - (log_pw if conditional else 0.0)
    return out


def evaluate(
    model, x, w, names=None, k=1000, n_prior=5000, seed=0, batch_size=None, progress=True,
    max_rows=None, precision="fp32",
):  # fmt: skip
    """Run `estimate` over a whole test set in batches: -> {name: np.ndarray (N,)} (book/model.md).

    `batch_size` (examples) and `max_rows` (decoder rows per chunk) default to 250 and 4096 on
    a CPU, which suit its caches, and to 1000 and 262144 on an accelerator, which wants work.
    `precision`: of the decoders, "fp32", "bf16" or "auto" (see resolve_precision).
    """
    on_cpu = x.device.type == "cpu"
    # a face decoder row is ~16x an MNIST one (12288 outputs and conv activations)
    scale = 16 if _is_image_model(model) else 1
    batch_size = batch_size or (250 if on_cpu else 1000) // scale
    max_rows = max_rows or (4096 if on_cpu else 262144) // scale
    model.eval()
    generator = torch.Generator(device=x.device).manual_seed(seed)
    results: dict[str, list] = {}
    starts = range(0, x.shape[0], batch_size)
    for start in tqdm(starts, desc=f"estimators k={k}", disable=not progress, leave=False):
        sl = slice(start, start + batch_size)
        batch = estimate(model, x[sl], w[sl], names, k, n_prior, generator, max_rows, precision)
        for name, values in batch.items():
            results.setdefault(name, []).append(values.cpu().numpy())
    return {name: np.concatenate(parts) for name, parts in results.items()}


def summarize(values: np.ndarray) -> dict:
    """Mean and standard error of per-example estimates: (N,) -> {'mean', 'sem', 'n'}."""
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise FloatingPointError(f"{int(np.sum(~np.isfinite(values)))} non-finite estimates")
    sem = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return {"mean": float(values.mean()), "sem": float(sem), "n": int(len(values))}


@torch.no_grad()
def label_accuracy(model, x, w) -> dict:
    """Accuracy of the model's image -> label path (JMVAE: argmax p(w|z) at the mean of q(z|x)
    (kl) / q(z|x,0) (zero)), and of argmax p(w|z) at the mean of its joint proposal "xw"."""
    labels = w.argmax(-1)
    spec = model.spec
    q_xw = proposals_of(model)["xw"](model, x, w)
    mu_xw = q_xw.mean if isinstance(q_xw, Mixture) else q_xw[0]
    return {
        "w_from_x": float((spec.image_to_label(model, x).argmax(-1) == labels).float().mean()),
        "w_from_xw": float((model.p_w_z.logits(mu_xw).argmax(-1) == labels).float().mean()),
    }
