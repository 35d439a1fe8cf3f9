"""Seconds per epoch of the same MNIST JMVAE-kl in our fit(), the plain loop, MultiVae and pixyz.

Usage (with the study's python):
    python benchmarks/compare_libraries.py --out benchmarks/results/<file>.json \
        [--n-train 60000] [--epochs 2] [--venv benchmarks/.venv-libs]

The PyPI packages `multivae` and `pixyz` are benchmark-only: this script installs them into its
own clean virtual environment (`--venv`, created when missing; torch pinned to the study's
2.14.1 through a constraints file) and runs each library in a subprocess with that
environment's python executing this same file as a worker (`--worker multivae|pixyz`). The
driver times, back to back in one invocation: (a) `jmvae_core.training.fit.fit`, (b) the plain
loop of `benchmarks/reference_loop.py`, (c) MultiVae's JMVAE with its own trainer, (d) a JMVAE
written with pixyz's distribution/loss/model API and the loop of pixyz's examples. Every model has
the paper's MNIST architecture (as the authors' code builds it) as closely as its library allows;
what could not be matched is listed under "notes" in the output JSON. Epoch 1 includes one-off
warm-up effects; read epoch 2.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TORCH_PIN = "torch==2.14.1"  # the study's torch; torchvision follows it (0.29.1)
LIBRARIES = ("multivae", "pixyz")
ALPHA, BATCH, LATENT, HIDDEN, LR, ADAM_EPS, SEED = 0.1, 100, 64, 512, 1e-3, 1e-4, 1

COMMON_NOTES = {
    "data": "binarised MNIST re-binarised every epoch (x ~ Bernoulli(pixel)) in all four; "
    "the libraries read it through a torch DataLoader (per-item indexing), ours and the plain "
    "loop index in-memory tensors",
    "init": "Glorot-uniform weights and zero biases applied to every nn.Linear in all four",
    "subnormals": "fit() flushes subnormal floats (torch.set_flush_denormal(True)); the plain "
    "loop and both libraries run with PyTorch's default (no flushing), as their users get",
    "threads": "each implementation runs with torch's default intra-op thread count",
}
MULTIVAE_NOTES = {
    "trainer": "multivae.trainers.BaseTrainer with a TrainingCallback timing on_epoch_begin -> "
    "on_epoch_end (includes its per-epoch deepcopy of the 'best' model and its tqdm bar)",
    "warmup": "JMVAEConfig(warmup=0) switches MultiVae's default 10-epoch KL annealing off, "
    "matching fit()'s default (no warm-up)",
    "alpha": "JMVAEConfig(alpha=0.1, beta=1.0)",
    "variance": "encoders must return log-variance (log_covariance); ours return "
    "log(softplus(h)) so the distribution family is ours, at the cost of an extra log/exp",
    "no_clipping": "BaseTrainer has no gradient clipping: the norm-5 and +-1 clips of the "
    "authors' code are missing (cannot be set without rewriting its optimiser step)",
    "adam": "Adam(lr=1e-3, betas=(0.9, 0.999), eps=1e-4) via optimizer_params; torch's "
    "default (foreach) Adam, not the fused kernel fit() uses",
    "loss_scale": "MultiVae sums over the batch then divides by the batch size: the same "
    "batch-mean loss",
    "categorical": "p(w|z) log-probability is MultiVae's cross_entropy (log_softmax of "
    "logits + 1e-6, a shift that changes nothing)",
    "saving": "the trainer writes its final model to a temporary output_dir after the last "
    "epoch (outside the timed epochs)",
}
PIXYZ_NOTES = {
    "loop": "pixyz.models.Model.train() per batch, in the loop of pixyz's examples "
    "(DataLoader, shuffle, loss accumulated)",
    "loss": "KL(q(z|x,w)||N(0,I)) - E_q[log p(x|z) p(w|z)] + 0.1 [KL(q||q(z|x)) + KL(q||q(z|w))], "
    "batch mean; KLs analytic (torch.distributions.kl_divergence)",
    "recompute": "q(z|x,w) runs once per step although four loss terms use it (checked by "
    "counting its forward calls)",
    "bernoulli": "pixyz's Bernoulli takes probs: p(x|z) outputs sigmoid(logits), which torch "
    "turns back into clamped logits",
    "categorical": "pixyz's Categorical takes probs: p(w|z) outputs softmax(logits)",
    "optimiser": "Model(optimizer=Adam, lr=1e-3, eps=1e-4, clip_grad_norm=5, "
    "clip_grad_value=1): the protocol of book/model.md; torch's default (foreach) Adam",
}


# ---------------------------------------------------------------------------------------------
# the benchmark's own environment


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _imports(python: Path, module: str) -> bool:
    probe = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True)
    return probe.returncode == 0


def ensure_venv(venv: Path) -> dict:
    """Create the clean benchmark venv when missing and install what is not importable.

    Returns {library: "ok" | "install failed: <last lines of pip's output>"}.
    """
    python = venv_python(venv)
    if not python.exists():
        print(f"creating the benchmark venv {venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    constraints = venv / "constraints.txt"
    constraints.write_text(TORCH_PIN + "\n")
    pip = [str(python), "-m", "pip", "install", "-c", str(constraints)]
    if not _imports(python, "torch"):
        print(f"installing {TORCH_PIN} into {venv}", flush=True)
        subprocess.run([*pip, TORCH_PIN], check=True)
    status = {}
    for lib in LIBRARIES:
        if _imports(python, lib):
            status[lib] = "ok"
            continue
        print(f"installing {lib} into {venv}", flush=True)
        done = subprocess.run([*pip, lib], capture_output=True, text=True)
        ok = done.returncode == 0 and _imports(python, lib)
        tail = (done.stdout + done.stderr).strip().splitlines()[-5:]
        status[lib] = "ok" if ok else "install failed: " + " | ".join(tail)
    return status


def device_label(torch) -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


# ---------------------------------------------------------------------------------------------
# workers: run inside the benchmark venv, without jmvae_core


def _glorot(module):
    import torch

    for m in module.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(m.weight)
            torch.nn.init.zeros_(m.bias)
    return module


def _mlp(*sizes):
    from torch import nn

    layers = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


def _load_npz(path: Path):
    import numpy as np
    import torch

    arrays = np.load(path)
    x = torch.from_numpy(arrays["x"]).float()  # grey levels in [0, 1], (N, 784)
    w = torch.nn.functional.one_hot(torch.from_numpy(arrays["y"]).long(), 10).float()
    return x, w


def worker_multivae(data: Path, epochs: int, device) -> dict:
    import torch
    import torch.nn.functional as F
    from multivae.data.datasets.base import MultimodalBaseDataset
    from multivae.models import JMVAE, JMVAEConfig
    from multivae.models.nn.base_architectures import BaseJointEncoder
    from multivae.trainers import BaseTrainer, BaseTrainerConfig
    from multivae.trainers.base.callbacks import TrainingCallback
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn.base_architectures import BaseDecoder, BaseEncoder
    from torch import nn

    class Unimodal(BaseEncoder):
        """q(z|x) or q(z|w): input -> 512 -> 512 -> (mean, log of the softplus variance)."""

        def __init__(self, n_in):
            BaseEncoder.__init__(self)
            self.latent_dim = LATENT
            self.trunk = _mlp(n_in, HIDDEN, HIDDEN)
            self.mu, self.var = nn.Linear(HIDDEN, LATENT), nn.Linear(HIDDEN, LATENT)

        def forward(self, x):
            h = self.trunk(x)
            return ModelOutput(embedding=self.mu(h), log_covariance=F.softplus(self.var(h)).log())

    class Joint(BaseJointEncoder):
        """q(z|x,w): x -> 512, w -> 512, concat -> 512 -> (mean, log variance)."""

        def __init__(self):
            BaseJointEncoder.__init__(self)
            self.latent_dim = LATENT
            self.x_in, self.w_in = _mlp(784, HIDDEN), _mlp(10, HIDDEN)
            self.trunk = _mlp(2 * HIDDEN, HIDDEN)
            self.mu, self.var = nn.Linear(HIDDEN, LATENT), nn.Linear(HIDDEN, LATENT)

        def forward(self, x: dict):
            h = torch.cat([self.x_in(x["images"]), self.w_in(x["labels"])], dim=-1)
            h = self.trunk(h)
            return ModelOutput(embedding=self.mu(h), log_covariance=F.softplus(self.var(h)).log())

    class Decoder(BaseDecoder):
        """p(x|z) or p(w|z): z -> 512 -> 512 -> logits."""

        def __init__(self, n_out):
            BaseDecoder.__init__(self)
            self.net = nn.Sequential(_mlp(LATENT, HIDDEN, HIDDEN), nn.Linear(HIDDEN, n_out))

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z))

    class Rebinarised(MultimodalBaseDataset):
        """Images re-drawn x ~ Bernoulli(pixel) at every access, i.e. every epoch."""

        def __getitem__(self, index):
            item = super().__getitem__(index)
            item.data["images"] = torch.bernoulli(item.data["images"])
            return item

    class EpochTimer(TrainingCallback):
        def __init__(self):
            self.seconds, self._start = [], None

        def on_epoch_begin(self, training_config, **kwargs):
            self._start = time.perf_counter()

        def on_epoch_end(self, training_config, **kwargs):
            self.seconds.append(time.perf_counter() - self._start)

    torch.manual_seed(SEED)
    x, w = _load_npz(data)
    config = JMVAEConfig(
        n_modalities=2,
        latent_dim=LATENT,
        input_dims={"images": (784,), "labels": (10,)},
        decoders_dist={"images": "bernoulli", "labels": "categorical"},
        alpha=ALPHA,
        beta=1.0,
        warmup=0,
    )
    model = JMVAE(
        config,
        encoders={"images": Unimodal(784), "labels": Unimodal(10)},
        decoders={"images": Decoder(784), "labels": Decoder(10)},
        joint_encoder=Joint(),
    )
    _glorot(model)
    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as out_dir:
        trainer_config = BaseTrainerConfig(
            output_dir=out_dir,
            per_device_train_batch_size=BATCH,
            num_epochs=epochs,
            learning_rate=LR,
            optimizer_cls="Adam",
            optimizer_params={"betas": (0.9, 0.999), "eps": ADAM_EPS},
            seed=SEED,
            drop_last=True,
            no_cuda=device.type != "cuda",
        )
        dataset = Rebinarised(data={"images": x, "labels": w})
        trainer = BaseTrainer(model, dataset, training_config=trainer_config, callbacks=[timer])
        trainer.train()
    return {"epoch_s": timer.seconds, "device_type": str(trainer.device)}


def worker_pixyz(data: Path, epochs: int, device) -> dict:
    import torch
    import torch.nn.functional as F
    from pixyz.distributions import Bernoulli, Categorical, Normal
    from pixyz.losses import KullbackLeibler
    from pixyz.models import Model
    from torch import nn, optim

    class Unimodal(Normal):
        """q(z|x) or q(z|w): input -> 512 -> 512 -> loc, scale = sqrt(softplus)."""

        def __init__(self, var_in, n_in, name):
            super().__init__(var=["z"], cond_var=[var_in], name=name)
            self.trunk = _mlp(n_in, HIDDEN, HIDDEN)
            self.mu, self.var_head = nn.Linear(HIDDEN, LATENT), nn.Linear(HIDDEN, LATENT)

        def forward(self, **inputs):
            h = self.trunk(next(iter(inputs.values())))
            return {"loc": self.mu(h), "scale": F.softplus(self.var_head(h)).sqrt()}

    class Joint(Normal):
        """q(z|x,w): x -> 512, w -> 512, concat -> 512 -> loc, scale = sqrt(softplus)."""

        def __init__(self):
            super().__init__(var=["z"], cond_var=["x", "y"], name="q")
            self.x_in, self.w_in = _mlp(784, HIDDEN), _mlp(10, HIDDEN)
            self.trunk = _mlp(2 * HIDDEN, HIDDEN)
            self.mu, self.var_head = nn.Linear(HIDDEN, LATENT), nn.Linear(HIDDEN, LATENT)

        def forward(self, x, y):
            h = self.trunk(torch.cat([self.x_in(x), self.w_in(y)], dim=-1))
            return {"loc": self.mu(h), "scale": F.softplus(self.var_head(h)).sqrt()}

    class ImageDecoder(Bernoulli):
        def __init__(self):
            super().__init__(var=["x"], cond_var=["z"], name="p_x")
            self.net = nn.Sequential(_mlp(LATENT, HIDDEN, HIDDEN), nn.Linear(HIDDEN, 784))

        def forward(self, z):
            return {"probs": torch.sigmoid(self.net(z))}

    class LabelDecoder(Categorical):
        def __init__(self):
            super().__init__(var=["y"], cond_var=["z"], name="p_y")
            self.net = nn.Sequential(_mlp(LATENT, HIDDEN, HIDDEN), nn.Linear(HIDDEN, 10))

        def forward(self, z):
            return {"probs": torch.softmax(self.net(z), dim=-1)}

    torch.manual_seed(SEED)
    x_all, w_all = _load_npz(data)
    q = _glorot(Joint()).to(device)
    q_x = _glorot(Unimodal("x", 784, "q_x")).to(device)
    q_y = _glorot(Unimodal("y", 10, "q_y")).to(device)
    p_x = _glorot(ImageDecoder()).to(device)
    p_y = _glorot(LabelDecoder()).to(device)
    prior = Normal(
        loc=torch.tensor(0.0),
        scale=torch.tensor(1.0),
        var=["z"],
        features_shape=[LATENT],
        name="p_{prior}",
    ).to(device)
    p = p_x * p_y
    loss = (
        KullbackLeibler(q, prior)
        - p.log_prob().expectation(q)
        + ALPHA * (KullbackLeibler(q, q_x) + KullbackLeibler(q, q_y))
    ).mean()
    model = Model(
        loss,
        distributions=[q, q_x, q_y, p_x, p_y],
        optimizer=optim.Adam,
        optimizer_params={"lr": LR, "betas": (0.9, 0.999), "eps": ADAM_EPS},
        clip_grad_norm=5.0,
        clip_grad_value=1.0,
    )
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x_all, w_all), batch_size=BATCH, shuffle=True, drop_last=True
    )
    seconds, losses = [], []
    for _ in range(epochs):
        start = time.perf_counter()
        total = 0.0
        for x, y in loader:
            x = torch.bernoulli(x).to(device)
            total += model.train({"x": x, "y": y.to(device)}).item()
        seconds.append(time.perf_counter() - start)
        losses.append(total / len(loader))
    return {"epoch_s": seconds, "loss": losses, "device_type": device.type}


WORKERS = {"multivae": worker_multivae, "pixyz": worker_pixyz}


def run_worker(name: str, data: Path, epochs: int, out: Path) -> None:
    import importlib.metadata

    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    result = WORKERS[name](data, epochs, device)
    versions = {"torch": torch.__version__}
    for dist in (name, "pythae") if name == "multivae" else (name,):
        versions[dist] = importlib.metadata.version(dist)
    result |= {"versions": versions, "threads": torch.get_num_threads()}
    out.write_text(json.dumps(result))
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------------
# driver: runs with the study's python


def time_ours(data, epochs: int) -> list[float]:
    from jmvae_core.config import make_config
    from jmvae_core.training.fit import fit

    cfg = make_config("quick", variant="jmvae_kl", alpha=ALPHA, epochs=epochs)
    _, history = fit(cfg, data, progress=False)
    return [row["time_s"] for row in history]


def time_reference(data, epochs: int) -> list[float]:
    import torch

    sys.path.insert(0, str(HERE))
    import reference_loop

    torch.set_flush_denormal(False)  # PyTorch's default, as an ordinary loop runs
    model, optimizer = reference_loop.make(alpha=ALPHA, seed=SEED)
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        reference_loop.train_epoch(model, optimizer, data.x_train, data.w_train, BATCH)
        seconds.append(time.perf_counter() - start)
    return seconds


def time_library(name: str, python: Path, data: Path, epochs: int, scratch: Path) -> dict:
    out = scratch / f"{name}.json"
    cmd = [str(python), str(Path(__file__).resolve()), "--worker", name]
    cmd += ["--data", str(data), "--epochs", str(epochs), "--worker-out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not out.exists():
        tail = (done.stdout + done.stderr).strip().splitlines()[-8:]
        return {"error": f"worker exited {done.returncode}: " + " | ".join(tail)}
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="the JSON file to write (driver mode)")
    parser.add_argument("--n-train", type=int, default=60000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--venv", type=Path, default=HERE / ".venv-libs")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker, args.data, args.epochs, args.worker_out)
        return
    if args.out is None:
        parser.error("--out is required")

    import numpy as np
    import torch

    from jmvae_core.data.mnist import load_mnist, mnist_dir, read_idx

    command = "python benchmarks/compare_libraries.py " + " ".join(sys.argv[1:])
    install = ensure_venv(args.venv.resolve())
    data = load_mnist(n_train=args.n_train)
    n_train = data.x_train.shape[0]
    labels = read_idx(mnist_dir() / "train-labels-idx1-ubyte")[:n_train]
    seconds: dict[str, list[float]] = {}
    notes: dict = {"common": COMMON_NOTES}
    versions = {"torch": torch.__version__}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        npz = scratch / "mnist_train.npz"
        np.savez(npz, x=data.x_train.numpy().astype(np.float32), y=labels.astype(np.int64))
        print("timing jmvae_core.training.fit.fit ...", flush=True)
        seconds["ours_fit"] = time_ours(data, args.epochs)
        print("timing benchmarks/reference_loop.py ...", flush=True)
        seconds["reference_loop"] = time_reference(data, args.epochs)
        for lib, lib_notes in (("multivae", MULTIVAE_NOTES), ("pixyz", PIXYZ_NOTES)):
            notes[lib] = dict(lib_notes)
            if install[lib] != "ok":
                notes[lib]["not_run"] = install[lib]
                continue
            print(f"timing {lib} ...", flush=True)
            result = time_library(lib, venv_python(args.venv.resolve()), npz, args.epochs, scratch)
            if "error" in result:
                notes[lib]["not_run"] = result["error"]
                continue
            seconds[lib] = result["epoch_s"]
            versions |= {
                f"{lib}_venv_{k}" if k == "torch" else k: v for k, v in result["versions"].items()
            }
            notes[lib]["threads"] = result["threads"]
    entries = []
    for name, values in seconds.items():
        for e, value in enumerate(values):
            entries.append(
                {"name": f"{name}_epoch{e + 1}_s", "value": round(value, 2), "unit": "s"}
            )
    for name, values in seconds.items():
        if name != "ours_fit":
            for e in range(args.epochs):
                ratio = values[e] / seconds["ours_fit"][e]
                entries.append(
                    {
                        "name": f"{name}_over_ours_epoch{e + 1}",
                        "value": round(ratio, 3),
                        "unit": "x",
                    }
                )
    for entry in entries:
        entry["command"] = command
    report = {
        "device": device_label(torch),
        "torch": torch.__version__.split("+")[0],
        "python": platform.python_version(),
        "n_train": n_train,
        "epochs": args.epochs,
        "batch_size": BATCH,
        "versions": versions,
        "entries": entries,
        "notes": notes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for entry in entries:
        print(f"{entry['name']:>34}: {entry['value']} {entry['unit']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
