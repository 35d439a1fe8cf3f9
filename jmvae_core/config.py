"""Frozen run configuration, validation, profiles and the run-id hash (book/model.md)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from jmvae_core.environment import celeba_dir

VARIANTS = ("vae", "cvae", "cmma", "jmvae_zero", "jmvae_kl")
# the models that followed JMVAE, each one file jmvae_core/models/<name>.py (models/__init__.py);
# they join no profile's plan() but only successors_plan()
SUCCESSORS: tuple[str, ...] = ("mvae", "mmvae", "mopoe")
SUCCESSOR_PROFILES = ("quick", "paper")  # the smoke profile checks the paper's pipeline only
MNIST_VARIANTS = (*VARIANTS, *SUCCESSORS)
# the face-image variants of book/celeba.md (jmvae_core/models/faces.py): convolutional nets,
# the GAN forms and JMVAE-kl without the GAN term; no name is shared with an MNIST model
IMAGE_VARIANTS = ("vae_gan", "cvae_gan", "cmma_gan", "jmvae_gan", "jmvae_kl_gan", "jmvae_kl_face")
ALL_VARIANTS = (*MNIST_VARIANTS, *IMAGE_VARIANTS)
ALPHA_VARIANTS = ("jmvae_kl", "jmvae_kl_gan", "jmvae_kl_face")  # the models that weigh by alpha
# the variants each family of data takes (a model declares its family: jmvae_core/models)
FAMILIES = {"mnist": MNIST_VARIANTS, "faces": IMAGE_VARIANTS}
IMAGE_LL = ("channel_mean", "sum")
PROFILES = ("smoke", "quick", "paper")


# the stand-in's attributes (jmvae_core.standin draws them): CelebA's spelling, in CelebA's column
# order (ASCII-sorted, as list_attr_celeba.txt is); here because a stand-in run's w_dim follows
STANDIN_ATTRIBUTES = (
    "Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Eyeglasses", "Gray_Hair",
    "Heavy_Makeup", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "Pale_Skin",
    "Smiling", "Wearing_Hat", "Wearing_Lipstick",
)  # fmt: skip


@dataclass(frozen=True)
class DatasetInfo:
    """What the configuration knows of a dataset; how a run loads, fetches or prepares it is
    declared beside it in jmvae_core/data/__init__.py (DATASETS there).

    family: "mnist" (28x28 digits with their label, binarised; the paper's MLPs) or "faces"
    (64x64 colour images with binary attributes; book/celeba.md): which variants, settings and
    measures apply. data: the dataset's DataConfig settings (faces only). attributes: the
    attribute names, or None where they are read from the files (CelebA's header). whole: the
    real set is used whole unless a run asks for `n_images`.
    """

    family: str
    data: dict = field(default_factory=dict)
    attributes: tuple[str, ...] | None = None
    whole: bool = False


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist"),
    # drawn faces are centred like CelebA's aligned images, and a face detector trained on
    # photographs need not fire on drawings: the stand-in uses the plain centre crop
    "standin": DatasetInfo("faces", {"crop": "center", "n_images": 50000}, STANDIN_ATTRIBUTES),
    "celeba": DatasetInfo("faces", whole=True),
}
IMAGE_DATASETS = tuple(name for name, d in DATASETS.items() if d.family == "faces")


class ConfigError(ValueError):
    """A configuration value is out of its allowed range; the message names the parameter."""


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of book/model.md: MLPs of `hidden` ReLU units, softplus variances."""

    variant: str = "jmvae_kl"
    alpha: float = 0.1  # weight of the two unimodal KL terms (ALPHA_VARIANTS only)
    latent_dim: int = 64
    hidden: int = 512
    x_dim: int = 784
    w_dim: int = 10
    cmma_prior_kl: bool = True  # the authors' CMMA also pulls q(z|x,w) to N(0, I)
    # face images only (None on MNIST, so MNIST run ids do not depend on these fields):
    width: int | None = None  # channels of the first conv layer (64 in book/celeba.md); all scale
    image_ll: str | None = None  # image log-likelihood used in training: IMAGE_LL

    def __post_init__(self):
        if self.variant not in ALL_VARIANTS:
            raise ConfigError(
                f"variant={self.variant!r} is unknown; allowed: {', '.join(ALL_VARIANTS)}"
            )
        if self.width is not None and (not isinstance(self.width, int) or self.width < 1):
            raise ConfigError(f"width={self.width!r} must be a positive integer")
        if self.image_ll is not None and self.image_ll not in IMAGE_LL:
            raise ConfigError(
                f"image_ll={self.image_ll!r} is unknown; allowed: {', '.join(IMAGE_LL)}"
            )
        if not isinstance(self.alpha, (int, float)) or not math.isfinite(self.alpha):
            raise ConfigError(f"alpha={self.alpha!r} must be a finite number >= 0")
        if self.alpha < 0:
            raise ConfigError(f"alpha={self.alpha!r} must be >= 0")
        for name in ("latent_dim", "hidden", "x_dim", "w_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r} must be a positive integer")
        if self.variant not in ALPHA_VARIANTS:
            # alpha is unused elsewhere: fix it so it cannot split identical runs into two ids
            object.__setattr__(self, "alpha", 0.0)
        object.__setattr__(self, "alpha", float(self.alpha))


TRAIN_PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation protocol of book/model.md (Adam eps 1e-4, clipping norm 5 then +-1)."""

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
    # "bf16": the objective's matmuls in bfloat16 (autocast), weights, Adam and sums in float32
    precision: str = "fp32"

    def __post_init__(self):
        if self.precision not in TRAIN_PRECISIONS:
            raise ConfigError(
                f"precision={self.precision!r} is unknown; allowed: {', '.join(TRAIN_PRECISIONS)}"
            )
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
    """Likelihood estimation settings of book/model.md."""

    k: int = 1000  # importance samples per test example
    n_prior: int = 5000  # prior samples for log p(w)
    n_test: int | None = None  # a subset of the test set (None = all 10,000)
    test_binarize_seed: int = 0  # the test set is binarised once with this seed
    eval_seed: int = 123  # seed of the estimators' samples
    n_judged: int = 1000  # images generated per requested digit for the digit judge (MNIST)

    def __post_init__(self):
        for name in ("k", "n_prior", "n_judged"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r} must be a positive integer")
        if self.n_test is not None and self.n_test < 1:
            raise ConfigError(f"n_test={self.n_test!r} must be a positive integer or None")


@dataclass(frozen=True)
class DataConfig:
    """Face-image data options of book/celeba.md (None for MNIST, whose files are fixed)."""

    crop: str = "haar"  # the authors' Haar-cascade crop, or "center" (a plain centre square)
    split: str = "random"  # 99/1 with `split_seed` (the code), or the "official" partition file
    split_seed: int = 1
    test_fraction: float = 0.01
    n_images: int | None = None  # stand-in: images generated; CelebA: first N listed (None = all)
    standin_seed: int = 0  # stand-in generator seed (ignored for CelebA)

    def __post_init__(self):
        if self.crop not in ("haar", "center"):
            raise ConfigError(f"crop={self.crop!r} is unknown; allowed: haar, center")
        if self.split not in ("random", "official"):
            raise ConfigError(f"split={self.split!r} is unknown; allowed: random, official")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"test_fraction={self.test_fraction!r} must be in (0, 1)")
        if self.n_images is not None and (not isinstance(self.n_images, int) or self.n_images < 2):
            raise ConfigError(f"n_images={self.n_images!r} must be an integer >= 2 or None")


# fields that only image runs set: left out of the dict (and the hash) while None, so the
# MNIST run ids made before they existed stay valid
_IMAGE_ONLY = {"model": ("width", "image_ll")}


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one run's results; `run_id` hashes all of it."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    dataset: str = "mnist"
    data: DataConfig | None = None

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ConfigError(
                f"dataset={self.dataset!r} is unknown; allowed: {', '.join(DATASETS)}"
            )
        image = self.dataset in IMAGE_DATASETS
        allowed = FAMILIES[DATASETS[self.dataset].family]
        if self.model.variant not in allowed:
            raise ConfigError(
                f"variant={self.model.variant!r} does not apply to dataset={self.dataset!r}; "
                f"allowed: {', '.join(allowed)}"
            )
        missing = [
            name
            for name, value in (("data", self.data), ("width", self.model.width))
            if (value is None) == image
        ]
        if missing:
            kind = "needs" if image else "does not take"
            raise ConfigError(f"dataset={self.dataset!r} {kind} {', '.join(missing)}")
        if image and self.train.precision != "fp32":
            raise ConfigError(
                f"precision={self.train.precision!r} is measured for the MNIST MLPs only; "
                "face models train in fp32"
            )

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if d["data"] is None:
            del d["data"]
        for part, names in _IMAGE_ONLY.items():
            for name in names:
                if d[part][name] is None:
                    del d[part][name]
        if d["train"]["precision"] == "fp32":  # the default keeps the ids it always had
            del d["train"]["precision"]
        if d["eval"]["n_judged"] == EvalConfig.n_judged:  # likewise
            del d["eval"]["n_judged"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        """The config of `to_dict`, also after a JSON round trip (which turns tuples into lists:
        they are turned back, so the run id is the same)."""

        def part(values: dict) -> dict:
            return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}

        return cls(
            model=ModelConfig(**part(d["model"])),
            train=TrainConfig(**part(d["train"])),
            eval=EvalConfig(**part(d["eval"])),
            dataset=d["dataset"],
            data=DataConfig(**part(d["data"])) if d.get("data") is not None else None,
        )

    @property
    def run_id(self) -> str:
        """Readable prefix + hash of every result-affecting field."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        digest = hashlib.sha256(blob).hexdigest()[:10]
        m = self.model
        alpha = f"-a{m.alpha:g}" if m.variant in ALPHA_VARIANTS else ""
        return f"{m.variant}{alpha}-z{m.latent_dim}-s{self.train.seed}-{digest}"


# Profiles are a contract with the book: what each one changes from the defaults.
PROFILE_SETTINGS: dict[str, dict[str, dict]] = {
    "smoke": {
        "train": {"epochs": 2, "n_train": 2000},
        "eval": {"k": 20, "n_prior": 200, "n_test": 500, "n_judged": 100},
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


# book/celeba.md for face images; profiles change the width, the schedule and the amount of data
IMAGE_SETTINGS: dict[str, dict] = {
    "model": {
        "variant": "jmvae_kl_face",  # the family's default, as jmvae_kl is MNIST's
        "latent_dim": 128,
        "width": 64,
        "image_ll": "channel_mean",
        "x_dim": 3 * 64 * 64,
    },  # fmt: skip
    "train": {"lr": 1e-4, "betas": (0.5, 0.999), "epochs": 100, "warmup_epochs": 20},
    "eval": {"k": 10, "n_prior": 1000},  # the code: k = 10 (N = 10; ours is larger, cheap)
}
IMAGE_PROFILE_NOTES = {
    "smoke": "a pipeline check on 240 faces, width 4, one epoch; its numbers are meaningless",
    "quick": "a quarter of the channels (width 16), 8 epochs with a 2-epoch warm-up, k = 10, "
    "sized for a 2-core CPU (the stand-in: 8,000 faces)",
    "paper": "book/celeba.md: width 64, 100 epochs with a 20-epoch warm-up, k = 10",
}
IMAGE_PROFILE_SETTINGS: dict[str, dict[str, dict]] = {
    "smoke": {
        "model": {"width": 4},
        "train": {"epochs": 1, "warmup_epochs": 1},
        "eval": {"k": 2, "n_prior": 20},
        "data": {"n_images": 240, "test_fraction": 0.25},
    },
    "quick": {
        "model": {"width": 16},
        "train": {"epochs": 8, "warmup_epochs": 2},
        "data": {"n_images": 8000, "test_fraction": 0.05},
    },
    "paper": {},
}


def image_w_dim(dataset: str, celeba_root: Path | None = None) -> int:
    """Number of attributes: the dataset's declared list (the stand-in's), else the columns of
    the CelebA attribute file's header in `celeba_root` (default: environment.celeba_dir(); 40
    for the real CelebA; 40 when the file is not there yet)."""
    declared = DATASETS[dataset].attributes
    if declared is None:
        root = Path(celeba_root) if celeba_root is not None else celeba_dir()
        header = root / "list_attr_celeba.txt"
        if header.exists():
            with open(header) as f:
                f.readline()
                return len(f.readline().split()) or 40
        return 40
    return len(declared)


def _profile_parts(profile: str, dataset: str, celeba_root=None) -> dict[str, dict]:
    names = ("model", "train", "eval", "data")
    if dataset not in IMAGE_DATASETS:
        return {n: dict(PROFILE_SETTINGS[profile].get(n, {})) for n in names}
    parts = {n: dict(IMAGE_SETTINGS.get(n, {})) for n in names}
    parts["model"]["w_dim"] = image_w_dim(dataset, celeba_root)
    parts["data"].update(DATASETS[dataset].data)
    for n in names:
        parts[n].update(IMAGE_PROFILE_SETTINGS[profile].get(n, {}))
    if DATASETS[dataset].whole:
        parts["data"].pop("n_images", None)  # the real set is used whole unless asked
    return parts


# every configuration field -> the part of RunConfig that holds it; the names are unique across
# the parts, so a flat override (make_config, the command line) is unambiguous
FIELD_PARTS = {
    f.name: part
    for part, cls in (("model", ModelConfig), ("train", TrainConfig), ("eval", EvalConfig),
                      ("data", DataConfig))
    for f in dataclasses.fields(cls)
}  # fmt: skip


def make_config(profile: str = "quick", celeba_root=None, **overrides) -> RunConfig:
    """Build a RunConfig from a profile plus flat overrides (e.g. variant=, alpha=, epochs=);
    `celeba_root`: the CelebA folder whose attribute header sets w_dim (default: the process's)."""
    if profile not in PROFILES:
        raise ConfigError(f"profile={profile!r} is unknown; allowed: {', '.join(PROFILES)}")
    dataset = overrides.pop("dataset", "mnist")
    if dataset not in DATASETS:
        raise ConfigError(f"dataset={dataset!r} is unknown; allowed: {', '.join(DATASETS)}")
    parts = _profile_parts(profile, dataset, celeba_root)
    for key, value in overrides.items():
        if key not in FIELD_PARTS:
            raise ConfigError(
                f"{key}= is not a configuration field; known: {', '.join(sorted(FIELD_PARTS))}"
            )
        parts[FIELD_PARTS[key]][key] = value
    image = dataset in IMAGE_DATASETS
    return RunConfig(
        model=ModelConfig(**parts["model"]),
        train=TrainConfig(**parts["train"]),
        eval=EvalConfig(**parts["eval"]),
        dataset=dataset,
        data=DataConfig(**parts["data"]) if image or parts["data"] else None,
    )


ALPHAS = (0.01, 0.1, 1.0)  # book/model.md: the paper's exact set is open
LATENT2_VARIANTS = ("vae", "cvae", "jmvae_zero", "jmvae_kl")  # the 2-D latent figures
LATENT2_ALPHA = 0.1
PROFILE_SEEDS = {"smoke": (1,), "quick": (1,), "paper": (1, 2, 3, 4, 5)}
# JMVAE-kl (alpha 0.1) trained longer, on the quick profile only: log p(x) against epochs at
# the profile's k, and at the paper's k = 1000 and N = 5000 for the headline comparison
CONVERGENCE_RUNS = {
    "smoke": (),
    "quick": ({"epochs": 20}, {"epochs": 20, "k": 1000, "n_prior": 5000}),
    "paper": (),
}


IMAGE_ALPHA = 0.1  # book/celeba.md


def plan(
    profile: str, dataset: str = "mnist", longer: bool = True, celeba_root=None, **overrides
) -> list[RunConfig]:
    """Every run a profile needs. MNIST: each variant (JMVAE-kl for every alpha) and seed at
    latent 64, plus one seed of the 2-D latent runs, plus (`longer`) the profile's
    CONVERGENCE_RUNS. Faces: each variant of book/celeba.md at alpha 0.1, seed 1 (`celeba_root`:
    the CelebA folder, see make_config). `overrides` apply to every run (e.g. epochs=1) and
    leave the longer runs out."""
    if profile not in PROFILES:
        raise ConfigError(f"profile={profile!r} is unknown; allowed: {', '.join(PROFILES)}")
    if dataset in IMAGE_DATASETS:
        return [
            make_config(profile, celeba_root, dataset=dataset, variant=v, alpha=IMAGE_ALPHA,
                        **overrides)
            for v in IMAGE_VARIANTS
        ]  # fmt: skip
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
    extra = CONVERGENCE_RUNS[profile] if longer and not overrides else ()  # a trial: own epochs
    for settings in extra:
        cfg = make_config(profile, variant="jmvae_kl", alpha=LATENT2_ALPHA, seed=1, **settings)
        if cfg.run_id not in {r.run_id for r in runs}:
            runs.append(cfg)
    return runs


RUN_FILTERS = ("variant", "alpha", "latent_dim", "seed")  # what `reproduce --only` can name


def select_runs(cfgs: list[RunConfig], only: dict | None) -> list[RunConfig]:
    """The runs of a plan that match every given filter (`only`: a field of RUN_FILTERS -> the
    allowed values); a ConfigError names a filter that matches nothing, so a typo never trains
    an empty plan."""
    if not only:
        return list(cfgs)
    unknown = sorted(set(only) - set(RUN_FILTERS))
    if unknown:
        raise ConfigError(f"run filter {unknown} is unknown; allowed: {', '.join(RUN_FILTERS)}")
    value = {
        "variant": lambda c: c.model.variant, "alpha": lambda c: c.model.alpha,
        "latent_dim": lambda c: c.model.latent_dim, "seed": lambda c: c.train.seed,
    }  # fmt: skip
    chosen = list(cfgs)
    for name, allowed in only.items():
        allowed = set(allowed)
        chosen = [c for c in chosen if value[name](c) in allowed]
        if not chosen:
            raise ConfigError(f"no run of the plan has {name} in {sorted(allowed)}")
    return chosen


def successors_plan(profile: str, **overrides) -> list[RunConfig]:
    """The runs of JMVAE's successors (SUCCESSORS) on MNIST: each at latent 64 and every seed of
    the profile, with the profile's schedule, as plan() makes JMVAE's. A separate list, so that
    plan() and the runs it counts stay as they were; the JMVAE runs they are compared with come
    from plan()."""
    if profile not in PROFILES:
        raise ConfigError(f"profile={profile!r} is unknown; allowed: {', '.join(PROFILES)}")
    if profile not in SUCCESSOR_PROFILES:
        return []
    return [
        make_config(profile, variant=variant, seed=seed, **overrides)
        for seed in PROFILE_SEEDS[profile]
        for variant in SUCCESSORS
    ]


def architecture(cfg: RunConfig) -> tuple:
    """What runs of one stacked group share: the dataset and every model field but alpha."""
    return (cfg.dataset, *(v for k, v in vars(cfg.model).items() if k != "alpha"))


def config_from_params(profile: str, **params) -> RunConfig:
    """make_config for command-line parameters, where None means "the profile's default"."""
    return make_config(profile, **{k: v for k, v in params.items() if v is not None})


def notebook_config(profile: str, config: dict | None, run_id: str | None = None) -> RunConfig:
    """The run of the train and evaluate notebooks: `config` as RunConfig.to_dict() gives it
    (what `jmvae reproduce` passes), or None for the profile's default run; a ConfigError
    unless it is the run `run_id` names (when given)."""
    cfg = RunConfig.from_dict(config) if config is not None else make_config(profile)
    if run_id is not None and cfg.run_id != run_id:
        raise ConfigError(f"the notebook's config is run {cfg.run_id}, not {run_id}")
    return cfg
