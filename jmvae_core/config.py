"""Frozen run configuration, validation, profiles and the run-id hash (DESIGN.md, SPEC §3)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field

VARIANTS = ("vae", "cvae", "cmma", "jmvae_zero", "jmvae_kl")
DATASETS = ("mnist",)
PROFILES = ("smoke", "quick", "paper")


class ConfigError(ValueError):
    """A configuration value is out of its allowed range; the message names the parameter."""


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of SPEC §3: MLPs of `hidden` ReLU units, softplus variances."""

    variant: str = "jmvae_kl"
    alpha: float = 0.1  # weight of the two unimodal KL terms (jmvae_kl only)
    latent_dim: int = 64
    hidden: int = 512
    x_dim: int = 784
    w_dim: int = 10
    cmma_prior_kl: bool = True  # the authors' CMMA also pulls q(z|x,w) to N(0, I)

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ConfigError(
                f"variant={self.variant!r} is unknown; allowed: {', '.join(VARIANTS)}"
            )
        if not isinstance(self.alpha, (int, float)) or not math.isfinite(self.alpha):
            raise ConfigError(f"alpha={self.alpha!r} must be a finite number >= 0")
        if self.alpha < 0:
            raise ConfigError(f"alpha={self.alpha!r} must be >= 0")
        for name in ("latent_dim", "hidden", "x_dim", "w_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r} must be a positive integer")
        if self.variant != "jmvae_kl":
            # alpha is unused elsewhere: fix it so it cannot split identical runs into two ids
            object.__setattr__(self, "alpha", 0.0)
        object.__setattr__(self, "alpha", float(self.alpha))


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation protocol of SPEC §3 (Adam eps 1e-4, clipping norm 5 then +-1)."""

    epochs: int = 20
    batch_size: int = 100
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-4
    clip_norm: float | None = 5.0  # None switches the global-norm clip off
    clip_value: float | None = 1.0  # None switches the element-wise clip off
    warmup_epochs: int = 0  # linear KL warm-up length; 0 = off (the code's default)
    warmup_alpha: bool = False  # also anneal the alpha terms (what reproductions did)
    seed: int = 1
    n_train: int | None = None  # a subset of the training set (None = all 60,000)

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r} must be a positive integer")
        if not isinstance(self.warmup_epochs, int) or self.warmup_epochs < 0:
            raise ConfigError(f"warmup_epochs={self.warmup_epochs!r} must be an integer >= 0")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr={self.lr!r} must be a finite number > 0")
        if self.n_train is not None and self.n_train < self.batch_size:
            raise ConfigError(f"n_train={self.n_train!r} must be >= batch_size={self.batch_size}")
        object.__setattr__(self, "betas", tuple(self.betas))


@dataclass(frozen=True)
class EvalConfig:
    """Likelihood estimation settings of SPEC §4."""

    k: int = 1000  # importance samples per test example
    n_prior: int = 5000  # prior samples for log p(w)
    n_test: int | None = None  # a subset of the test set (None = all 10,000)
    test_binarize_seed: int = 0  # the test set is binarised once with this seed
    eval_seed: int = 123  # seed of the estimators' samples

    def __post_init__(self):
        for name in ("k", "n_prior"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r} must be a positive integer")
        if self.n_test is not None and self.n_test < 1:
            raise ConfigError(f"n_test={self.n_test!r} must be a positive integer or None")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one run's results; `run_id` hashes all of it."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    dataset: str = "mnist"

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ConfigError(
                f"dataset={self.dataset!r} is unknown; allowed: {', '.join(DATASETS)}"
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        return cls(
            model=ModelConfig(**d["model"]),
            train=TrainConfig(**d["train"]),
            eval=EvalConfig(**d["eval"]),
            dataset=d["dataset"],
        )

    @property
    def run_id(self) -> str:
        """Readable prefix + hash of every result-affecting field."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        digest = hashlib.sha256(blob).hexdigest()[:10]
        m = self.model
        alpha = f"-a{m.alpha:g}" if m.variant == "jmvae_kl" else ""
        return f"{m.variant}{alpha}-z{m.latent_dim}-s{self.train.seed}-{digest}"


# Profiles are a contract with the book (DESIGN.md): what each one changes from the defaults.
PROFILE_SETTINGS: dict[str, dict[str, dict]] = {
    "smoke": {
        "train": {"epochs": 2, "n_train": 2000},
        "eval": {"k": 20, "n_prior": 200, "n_test": 500},
    },
    "quick": {
        "train": {"epochs": 12},
        "eval": {"k": 100, "n_prior": 1000},
    },
    "paper": {
        "train": {"epochs": 500, "warmup_epochs": 200, "warmup_alpha": True},
        "eval": {"k": 1000, "n_prior": 5000},
    },
}


PROFILE_NOTES = {
    "smoke": "a pipeline check on a subset of the data; its numbers are meaningless",
    "quick": "the full data with a shortened schedule (12 epochs, k = 100), sized for a 2-core CPU",
    "paper": "the paper's protocol: 500 epochs, k = 1000, N = 5000, five seeds",
}


def make_config(profile: str = "quick", **overrides) -> RunConfig:
    """Build a RunConfig from a profile plus flat overrides (e.g. variant=, alpha=, epochs=)."""
    if profile not in PROFILES:
        raise ConfigError(f"profile={profile!r} is unknown; allowed: {', '.join(PROFILES)}")
    parts = {
        name: dict(PROFILE_SETTINGS[profile].get(name, {})) for name in ("model", "train", "eval")
    }
    owners = {f.name: "model" for f in dataclasses.fields(ModelConfig)}
    owners |= {f.name: "train" for f in dataclasses.fields(TrainConfig)}
    owners |= {f.name: "eval" for f in dataclasses.fields(EvalConfig)}
    # field names are unique across the three parts, so a flat override is unambiguous
    dataset = overrides.pop("dataset", "mnist")
    for key, value in overrides.items():
        if key not in owners:
            raise ConfigError(
                f"{key}= is not a configuration field; known: {', '.join(sorted(owners))}"
            )
        parts[owners[key]][key] = value
    return RunConfig(
        model=ModelConfig(**parts["model"]),
        train=TrainConfig(**parts["train"]),
        eval=EvalConfig(**parts["eval"]),
        dataset=dataset,
    )


ALPHAS = (0.01, 0.1, 1.0)  # SPEC §2: the paper's exact set is open
LATENT2_VARIANTS = ("vae", "cvae", "jmvae_zero", "jmvae_kl")  # the 2-D latent figures
LATENT2_ALPHA = 0.1
PROFILE_SEEDS = {"smoke": (1,), "quick": (1,), "paper": (1, 2, 3, 4, 5)}


def plan(profile: str, **overrides) -> list[RunConfig]:
    """Every run a profile needs: each variant (JMVAE-kl for every alpha) and seed at latent 64,
    plus one seed of the 2-D latent runs. `overrides` apply to every run (e.g. epochs=1)."""
    if profile not in PROFILES:
        raise ConfigError(f"profile={profile!r} is unknown; allowed: {', '.join(PROFILES)}")
    runs = []
    for seed in PROFILE_SEEDS[profile]:
        for variant in VARIANTS:
            for alpha in ALPHAS if variant == "jmvae_kl" else (0.0,):
                runs.append(
                    make_config(profile, variant=variant, alpha=alpha, seed=seed, **overrides)
                )
    for variant in LATENT2_VARIANTS:
        alpha = LATENT2_ALPHA if variant == "jmvae_kl" else 0.0
        runs.append(
            make_config(profile, variant=variant, alpha=alpha, latent_dim=2, seed=1, **overrides)
        )
    return runs


def config_from_params(profile: str, **params) -> RunConfig:
    """make_config for notebook/CLI parameters, where None means "the profile's default"."""
    return make_config(profile, **{k: v for k, v in params.items() if v is not None})
