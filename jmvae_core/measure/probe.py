"""Latent linear probe: how much of the digit a model's image-only latent keeps, linearly.

The representation of an image is the mean of the model's single-input proposal for it (the
estimators' "x" proposal: q(z|x) for VAE, JMVAE-kl and the successors' image expert, q(z|x,0)
for JMVAE-zero, the product of q(z|x) and the prior for MVAE). A multinomial logistic
regression (weights and biases, an L2 penalty on the weights) is fitted on the 60,000 training
images' means, standardised with the training statistics, and scored on the 10,000 binarised
test images. Models without an image-only encoder (CVAE, CMMA: their only encoder reads the
label too) get no probe. The training images are binarised once with their own fixed seed, as
the test set is (the trainer re-binarises them every epoch).

The fit is full-batch L-BFGS in float64 with a strong-Wolfe line search, in torch alone (the
GPU script's machine has neither scikit-learn nor pandas), so it is deterministic and its
optimum can be checked: the gradient vanishes there (`fit_logistic` reports its norm). It runs
where the model's images are (the GPU on CUDA); the binarised training images are drawn on the
CPU, so they are the same on every device, and kept for the next probe of the same data.
"""

from __future__ import annotations

import torch

from jmvae_core.measure import estimators

PENALTY = 1e-4  # L2 weight penalty per example (on standardised features)
MAX_ITER = 500
TRAIN_BINARIZE_OFFSET = 1  # training images binarised with test_binarize_seed + this


def image_encoder(model):
    """(model, x) -> the mean of the model's image-only proposal, or None if it has none."""
    table = estimators.spec_of(model)
    if not any(proposal == "x" for proposal, _, _ in table.values()):
        return None
    propose = estimators.proposals_of(model)["x"]

    def encode(x):
        q = propose(model, x, None)
        return q.mu

    return encode


@torch.no_grad()
def latent_means(encode, x: torch.Tensor, batch: int = 5000) -> torch.Tensor:
    """Means for every row of x, in batches: (N, 784) -> (N, D) float64 on x's device."""
    return torch.cat([encode(x[i : i + batch]).double() for i in range(0, len(x), batch)])


def fit_logistic(
    features: torch.Tensor, labels: torch.Tensor, penalty: float = PENALTY,
    max_iter: int = MAX_ITER,
) -> dict:  # fmt: skip
    """Multinomial logistic regression by full-batch L-BFGS in float64.

    features (N, D), labels (N,) integer classes, fitted on the features' device. Minimises
    mean cross-entropy + penalty * ||W||^2 over W (D, C) and b (C,). Returns the
    standardisation, W, b, the final loss and the norm of its gradient (near 0 at the optimum).
    """
    x = features.double()
    labels = labels.to(x.device)
    mean, std = x.mean(0), x.std(0).clamp_min(1e-8)
    x = (x - mean) / std
    classes = int(labels.max()) + 1
    weight = torch.zeros(x.shape[1], classes, dtype=x.dtype, device=x.device, requires_grad=True)
    bias = torch.zeros(classes, dtype=x.dtype, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS(
        [weight, bias], lr=1, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
        history_size=20, line_search_fn="strong_wolfe",
    )  # fmt: skip

    def loss_fn():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight + bias, labels)
        loss = loss + penalty * weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(loss_fn)
    loss = loss_fn().detach()
    grad = torch.cat([weight.grad.flatten(), bias.grad]).norm()
    return {
        "mean": mean, "std": std, "weight": weight.detach(), "bias": bias.detach(),
        "loss": float(loss), "grad_norm": float(grad),
    }  # fmt: skip


def predict(fit: dict, features: torch.Tensor) -> torch.Tensor:
    """Predicted classes of the rows of `features` under a fit_logistic result."""
    x = (features.double() - fit["mean"]) / fit["std"]
    return (x @ fit["weight"] + fit["bias"]).argmax(1)


_binarised: dict = {}  # the last draw: {"of": the images drawn from, "seed": ..., "x": the draw}


def binarized_train_images(data, seed: int) -> torch.Tensor:
    """The training images binarised on the CPU with a fixed generator (as the test set), on
    their own device; drawn once and kept for the next call with the same images and seed (the
    images are held with the draw, so `is` cannot match a new tensor at a reused address)."""
    if _binarised.get("of") is data.x_train and _binarised.get("seed") == seed:
        return _binarised["x"]
    g = torch.Generator().manual_seed(seed)
    x = torch.bernoulli(data.x_train.cpu(), generator=g).to(data.x_train.device)
    _binarised.clear()
    _binarised.update({"of": data.x_train, "seed": seed, "x": x})
    return x


def latent_probe(model, data, test_binarize_seed: int = 0) -> dict | None:
    """The probe's record for a trained MNIST model, or None if it has no image-only encoder."""
    encode = image_encoder(model)
    if encode is None:
        return None
    model.eval()
    x_train = binarized_train_images(data, test_binarize_seed + TRAIN_BINARIZE_OFFSET)
    y_train = data.w_train.argmax(1).to(x_train.device)
    y_test = data.w_test.argmax(1).to(x_train.device)
    fit = fit_logistic(latent_means(encode, x_train), y_train)
    test_pred = predict(fit, latent_means(encode, data.x_test))
    train_pred = predict(fit, latent_means(encode, x_train))
    n_test = len(y_test)
    accuracy = float((test_pred == y_test).double().mean())
    return {
        "accuracy": accuracy,
        "accuracy_se": (accuracy * (1 - accuracy) / n_test) ** 0.5,
        "train_accuracy": float((train_pred == y_train).double().mean()),
        "n_train": len(y_train),
        "n_test": n_test,
        "encoder": "mean of the image-only proposal (estimators' 'x')",
        "penalty": PENALTY,
        "final_loss": round(fit["loss"], 6),
        "grad_norm": fit["grad_norm"],
    }
