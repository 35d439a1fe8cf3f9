"""What the setup, provenance, performance, status, face and 2-D latent pages show.

The result notebooks call one function of this module a cell. Inputs are a profile (and
dataset), runs from `results.load_runs`, or benchmark dicts from `results.load_benchmark`;
outputs are DataFrames (indexed by a name: run id, model, notebook, setting), strings, plain
Python numbers (for `{glue:text}`) and matplotlib Figures (closed: shown where they are glued,
not twice). Only `load_face_runs` and `status_table` read files; `setup_display` sets display
options.
"""

from __future__ import annotations

import dataclasses
import re
import textwrap
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from . import config, plots, registry, results, tables
from . import face_tables as ft
from .data import MNIST_MD5

# --------------------------------------------------------------------------------- display


def setup_display() -> None:
    """Notebook display settings: whole strings in tables (hashes and run ids are never cut)
    and no missing-glyph warnings from matplotlib in the outputs."""
    pd.set_option("display.max_colwidth", None)
    warnings.filterwarnings("ignore", message="Glyph")


def _closed(fig: plt.Figure) -> plt.Figure:
    """A figure removed from pyplot: it is shown where it is glued, not again at cell end."""
    plt.close(fig)
    return fig


def _plain(value):
    """A numpy scalar as the Python number `{glue:text}` can format."""
    return value.item() if isinstance(value, np.generic) else value


# ----------------------------------------------------------------------------------- setup

PLAN_COLUMNS = ["variant", "alpha", "latent_dim", "seed", "epochs", "k"]


def defaults_table() -> pd.DataFrame:
    """The defaults of the model, training and evaluation parts of a run's configuration."""
    parts = {"model": config.ModelConfig, "train": config.TrainConfig, "eval": config.EvalConfig}
    series = {
        part: pd.Series({k: str(v) for k, v in dataclasses.asdict(cls()).items()}, dtype=object)
        for part, cls in parts.items()
    }
    table = pd.concat(series).rename("default").to_frame()
    table.index.names = ["part", "setting"]
    return table


def profiles_table() -> pd.DataFrame:
    """What each MNIST profile changes from the defaults ("default" where nothing), and its
    seeds; rows are settings, columns profiles."""
    table = pd.DataFrame(
        {
            name: {f"{part}.{k}": str(v) for part, d in s.items() for k, v in d.items()}
            for name, s in config.PROFILE_SETTINGS.items()
        }
    ).fillna("default")
    table.loc["seeds"] = [str(config.PROFILE_SEEDS[p]) for p in table.columns]
    table.index.name = "setting"
    return table


def _flat(cfg: config.RunConfig) -> dict[str, str]:
    parts = {"model": cfg.model, "train": cfg.train, "eval": cfg.eval, "data": cfg.data}
    return {
        f"{part}.{k}": str(v)
        for part, obj in parts.items()
        if obj is not None
        for k, v in dataclasses.asdict(obj).items()
    }


def face_profiles_table(dataset: str = "standin") -> pd.DataFrame:
    """The face runs' settings per profile (book/celeba.md's protocol, cut by the profile):
    every setting that differs from the MNIST default or between profiles."""
    base = _flat(config.make_config("quick"))
    table = pd.DataFrame(
        {p: _flat(config.make_config(p, dataset=dataset)) for p in config.PROFILES}
    )
    differs = table.nunique(axis=1) > 1
    differs |= table.apply(lambda row: row.iloc[0] != base.get(row.name), axis=1)
    table = table[differs & ~table.index.isin(["model.variant", "model.alpha"])]
    table.index.name = "setting"
    return table


def plan_table(profile: str, dataset: str = "mnist") -> pd.DataFrame:
    """Every run of a profile's plan, indexed by run id."""
    rows = {
        c.run_id: {
            "variant": c.model.variant,
            "alpha": c.model.alpha,
            "latent_dim": c.model.latent_dim,
            "seed": c.train.seed,
            "epochs": c.train.epochs,
            "k": c.eval.k,
        }
        for c in config.plan(profile, dataset)
    }
    table = pd.DataFrame.from_dict(rows, orient="index")[PLAN_COLUMNS]
    table.index.name = "run id"
    return table


def setup_facts(profile: str) -> dict:
    """Key numbers of a profile: its MNIST and face runs, and the schedule (epochs, k) of a
    typical run of each (the plan tables list the runs that differ, e.g. longer ones)."""
    mnist, faces = config.make_config(profile), config.make_config(profile, dataset="standin")
    return {
        "n_runs": len(config.plan(profile)),
        "n_face_runs": len(config.plan(profile, "standin")),
        "schedule": f"{mnist.train.epochs} epochs, k = {mnist.eval.k}",
        "face_schedule": f"{faces.train.epochs} epochs, k = {faces.eval.k}",
    }


# ------------------------------------------------------------------------- reproducibility

PROVENANCE_COLUMNS = [
    "dataset",
    "variant",
    "epochs",
    "device_name",
    "torch",
    "python",
    "git_commit",
    "train_time_s",
    "eval_time_s",
]


def load_face_runs(profile: str, dataset: str = "standin") -> list[dict]:
    """The finished face runs of a profile, or [] where the face plan is not (all) finished:
    an MNIST-only reproduction still renders its provenance page."""
    try:
        return results.load_runs(profile, dataset=dataset)
    except FileNotFoundError:
        return []


def _all_runs(mnist_runs: list[dict], face_runs: list[dict]) -> list[dict]:
    return [{"dataset": "mnist", **r} for r in mnist_runs] + list(face_runs)


def _provenance_rows(mnist_runs: list[dict], face_runs: list[dict]) -> pd.DataFrame:
    columns = ["run_id", *PROVENANCE_COLUMNS]
    rows = [{c: r.get(c) for c in columns} for r in _all_runs(mnist_runs, face_runs)]
    table = pd.DataFrame(rows, columns=columns).set_index("run_id")
    table.index.name = "run id"
    return table.rename(columns={"train_time_s": "train (s)", "eval_time_s": "evaluation (s)"})


SHARED_CANDIDATES = ("device_name", "torch", "python")


def provenance_table(mnist_runs: list[dict], face_runs: list[dict]) -> pd.DataFrame:
    """What every run recorded about itself, indexed by run id (MNIST runs first, then the
    face runs): dataset, model, epochs, the code commit, training and evaluation seconds, and
    the device, torch and Python versions where they differ between runs
    (`provenance_shared` names them where all runs share them)."""
    table = _provenance_rows(mnist_runs, face_runs)
    shared = [c for c in SHARED_CANDIDATES if table[c].nunique(dropna=False) <= 1]
    return table.drop(columns=shared)


def provenance_shared(mnist_runs: list[dict], face_runs: list[dict]) -> str:
    """The device, torch and Python versions that every run recorded alike, in words."""
    table = _provenance_rows(mnist_runs, face_runs)
    names = {"device_name": "device", "torch": "torch", "python": "Python"}
    shared = [
        f"{names[c]} {table[c].iloc[0]}"
        for c in SHARED_CANDIDATES
        if len(table) and table[c].nunique(dropna=False) == 1
    ]
    return ", ".join(shared) if shared else "none"


def eval_sets_table(mnist_runs: list[dict], face_runs: list[dict]) -> pd.DataFrame:
    """The test set(s) the runs evaluated on: one row per dataset and test-set hash, with the
    number of runs that used it."""
    seed = "binarisation seed"
    rows = pd.DataFrame(
        [
            {
                "dataset": r["dataset"],
                "test set SHA-256": r.get("test_hash"),
                seed: "—" if r.get("test_binarize_seed") is None else r["test_binarize_seed"],
                "run_id": r["run_id"],
            }
            for r in _all_runs(mnist_runs, face_runs)
        ],
        dtype=object,
    )
    if rows.empty:
        return pd.DataFrame(columns=["test set SHA-256", seed, "runs"])
    keys = ["dataset", "test set SHA-256", seed]
    table = rows.groupby(keys, sort=False)["run_id"].count()
    return table.rename("runs").reset_index().set_index("dataset")


def checksums_table(face_runs: list[dict]) -> pd.DataFrame:
    """The data files' checksums, indexed by data (with the algorithm) and file: MNIST's MD5
    (checked on every load) and the SHA-256 of the face images and attribute list that each
    face run's data manifest recorded (its data folder names the stand-in's size and seed)."""
    rows = [("MNIST (MD5)", name, md5) for name, md5 in MNIST_MD5.items()]
    for run in face_runs:
        manifest = run.get("data_manifest") or {}
        data = f"{manifest.get('data_folder') or run.get('dataset')} (SHA-256)"
        rows += [(data, name, digest) for name, digest in (manifest.get("sha256") or {}).items()]
    table = pd.DataFrame(rows, columns=["data", "file", "checksum"])
    return table.drop_duplicates().set_index(["data", "file"])


def provenance_facts(mnist_runs: list[dict], face_runs: list[dict]) -> dict:
    """Key numbers of the provenance page: runs per half, the commits and devices recorded,
    and whether each dataset's runs share one test set."""
    runs = _all_runs(mnist_runs, face_runs)
    commits = sorted({str(r.get("git_commit")) for r in runs})
    devices = sorted({str(r.get("device_name")) for r in runs})
    shared = {
        d: len({r.get("test_hash") for r in runs if r["dataset"] == d}) == 1
        for d in {r["dataset"] for r in runs}
    }
    return {
        "n_mnist": len(mnist_runs),
        "n_faces": len(face_runs),
        "commits": ", ".join(commits),
        "n_commits": len(commits),
        "devices": ", ".join(devices),
        "one_test_set": "yes" if shared and all(shared.values()) else "no",
    }


# ----------------------------------------------------------------------------- performance

SINGLE_RUN_LABELS = {
    "reference_loop": "plain PyTorch loop (fp32)",
    "fit_fp32": "jmvae_core fit(), fp32",
    "fit_bf16": "jmvae_core fit(), bf16 autocast",
}


def _no_internal_notes(text: str) -> str:
    """Benchmark notes written before the book existed cite an internal note: say what it is."""
    return re.sub(r"(the protocol of )?SPEC\s*§\s*[\d.]*\d", "the authors' protocol", text)


def speed_header(speed: dict) -> str:
    """The machine of `benchmarks/speed.py`'s report: device, versions, threads, data, peak."""
    peak = ", ".join(f"{dtype} {p['gflops']:.0f} GFLOP/s" for dtype, p in speed["peak"].items())
    return (
        f"{speed['device']}, torch {speed['torch']}, {speed['threads']} threads, "
        f"{speed['n_train']} training images; matmul peak: {peak}; peak memory while "
        f"training one run: {speed['single_run_peak_mib']:.0f} MiB"
    )


def single_run_table(speed: dict) -> pd.DataFrame:
    """One run's epochs in each implementation, the plain loop's last epoch over each's, and
    the share of the matmul peak; an implementation that did not run says why."""
    ref = speed["single_run"]["reference_loop"]["epoch_s"][-1]
    rows = {}
    for key, row in speed["single_run"].items():
        if "epoch_s" not in row:
            rows[key] = {"note": "not run: " + str(row.get("not_run"))}
            continue
        label = SINGLE_RUN_LABELS.get(key) or f"{key} {row['versions'].get(key, '')}"
        rows[label] = {
            **{f"epoch {i + 1} (s)": round(s, 2) for i, s in enumerate(row["epoch_s"])},
            "plain loop / this": round(ref / row["epoch_s"][-1], 2),
            "% of peak": round(100 * row["peak_fraction"], 1) if "peak_fraction" in row else None,
        }
    table = pd.DataFrame(rows).T
    table.index.name = "implementation"
    return table.astype(object).where(table.notna(), "—")  # "—": not measured


STEP_PARTS = {"forward": "forward (noise, objective)", "backward": "backward",
              "clip": "clipping", "adam": "Adam"}  # fmt: skip


def step_parts_table(bench: dict) -> pd.DataFrame:
    """benchmarks/step_speed.py: ms per step of each part in the reference step (torch's
    clipping calls) and in fit's step, by thread count; the matmuls inside the step against
    their time at the measured peak; seconds per epoch after the first, and the ratio."""
    rows = {}
    for r in bench["by_threads"]:
        ref, ours = r["parts_ms"]["reference"], r["parts_ms"]["fit"]
        t = f"{r['threads']} thread{'s' if r['threads'] > 1 else ''}"
        for key, label in STEP_PARTS.items():
            rows[(t, label)] = (round(ref[key], 2), round(ours[key], 2))
        rows[(t, "whole step")] = (round(sum(ref.values()), 2), round(sum(ours.values()), 2))
        rows[(t, "of which in matmuls")] = ("—", round(r["matmul_ms_in_step"], 2))
        rows[(t, "matmuls at the measured peak")] = ("—", round(r["matmul_ms_at_peak"], 2))
        epoch = lambda xs: round(sum(xs[1:]) / len(xs[1:]), 2)  # noqa: E731
        rows[(t, "epoch, 60,000 images (s)")] = (
            epoch(r["reference_epoch_s"]),
            epoch(r["fit_epoch_s"]),
        )
    table = pd.DataFrame(rows, index=["reference step (ms)", "fit (ms)"]).T
    table.index.names = ["threads", "part"]
    return table


def step_speed_values(bench: dict) -> dict:
    """The figures the Performance page cites from benchmarks/step_speed.py, by glue name:
    per thread count n, fit's speed-up over the reference step (epochs after the first,
    speedup_n), the share of the step in matmuls (mm_share_n), their rate as a share of the
    peak (peak_share_n), Adam and clipping's share (adam_clip_n) and the most a step could gain
    with matmuls at the peak and nothing else but Adam (bound_n); the machine, whether the two
    trainings' weights were equal, and how much clipping the steps needed."""
    clipping = bench["clipping"]
    values = {
        "header": f"{bench['cpu']['model']} ({', '.join(bench['cpu']['flags'])}), "
        f"{bench['device']}, torch {bench['torch']}",
        "equal": "yes" if all(r["weights_equal"] for r in bench["by_threads"]) else "no",
        "clip_steps": f"{clipping['steps']:,}",
        "clip_norms": "{} to {}".format(*clipping["grad_norm_range"]),
        "clip_tensors": "{} to {}".format(*clipping["tensors_to_clamp_range"]),
    }
    for r in bench["by_threads"]:
        parts, n = r["parts_ms"]["fit"], r["threads"]
        step = sum(parts.values())
        values |= {
            f"speedup_{n}": round(r["speedup"], 2),
            f"mm_share_{n}": round(100 * r["matmul_ms_in_step"] / step),
            f"peak_share_{n}": round(100 * r["matmul_ms_at_peak"] / r["matmul_ms_in_step"]),
            f"adam_clip_{n}": round(100 * (parts["adam"] + parts["clip"]) / step),
            f"bound_{n}": round(step / (r["matmul_ms_at_peak"] + parts["adam"]), 2),
        }
    return values


def single_run_facts(speed: dict) -> dict:
    """The speed-ups of fit() over the plain loop (last epoch), float32 and bfloat16."""
    runs = speed["single_run"]
    ref = runs["reference_loop"]["epoch_s"][-1]
    out = {}
    for key in ("fit_fp32", "fit_bf16"):
        if "epoch_s" in runs.get(key, {}):
            out[key] = round(ref / runs[key]["epoch_s"][-1], 2)
    return out


def library_notes_table(speed: dict) -> pd.DataFrame:
    """How the libraries had to differ from fit(): one row per library ("common": all four)
    and aspect."""
    rows = {
        (lib, aspect): _no_internal_notes(str(text))
        for lib, note in speed["library_notes"].items()
        for aspect, text in (note.items() if isinstance(note, dict) else [("", note)])
    }
    table = pd.Series(rows, name="difference").to_frame()
    table.index.names = ["library", "aspect"]
    return table


def library_notes_markdown(speed: dict):
    """library_notes_table as a MyST list (long sentences read badly in a table cell)."""
    from IPython.display import Markdown

    items = [
        f"- **{lib}**{' (' + aspect + ')' if aspect else ''}: {text}"
        for (lib, aspect), text in library_notes_table(speed)["difference"].items()
    ]
    return Markdown("\n".join(items))


def batched_table(speed: dict) -> pd.DataFrame:
    """R runs trained as one stacked computation: time per epoch, peak share and memory."""
    rows = {
        r["runs"]: {
            "training images": r["n_train"],
            "ms per epoch per run": round(r["ms_per_epoch_per_run"], 1),
            "ms per epoch (all R)": round(r["ms_per_epoch"], 1),
            "% of fp32 peak": round(100 * r["peak_fraction"], 1),
            "peak memory (MiB)": round(r["peak_mib"]),
        }
        for r in speed["batched"]
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "runs R"
    return table


def evaluation_table(speed: dict) -> pd.DataFrame:
    """The k = 1000 marginal log p(x) estimator in each precision."""
    rows = {
        r["precision"]: {
            "test images": r["n_test"],
            "k": r["k"],
            "seconds": round(r["seconds"], 1),
            "mean log p(x)": round(r["marginal"], 3),
            "% of peak": round(100 * r["peak_fraction"], 1),
            "peak memory (MiB)": round(r["peak_mib"]),
        }
        for r in speed["evaluation"]
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "precision"
    return table


def evaluation_facts(speed: dict) -> dict:
    """Seconds of the k = 1000 estimator over the test set, per precision."""
    return {r["precision"]: round(float(r["seconds"]), 1) for r in speed["evaluation"]}


def precision_header(prec: dict) -> str:
    """What `benchmarks/estimator_precision.py` measured, and the rule's decision."""
    return (
        f"{prec['device']}, torch {prec['torch']}: {prec['epochs']} epochs, {prec['n_test']} "
        f"test images, k = {prec['k']}; rule: |shift| < {prec['limit']} nats, "
        f"decision: {prec['decision']}"
    )


def precision_table(prec: dict) -> pd.DataFrame:
    """Per variant and estimator: the mean bf16 - fp32 shift, its standard error, the
    largest per-image difference."""
    rows = {
        (variant, est): {
            "shift bf16 - fp32 (nats)": round(r["shift"], 4),
            "standard error": round(r["sem"], 4),
            "largest per image": round(r["max_abs"], 3),
        }
        for variant, per in prec["shifts"].items()
        for est, r in per.items()
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.names = ["variant", "estimator"]
    return table


def bf16_training_table(bf16: dict) -> pd.DataFrame:
    """log p(x) of the float32 and bfloat16 run of each seed, and their difference."""
    runs = pd.DataFrame(bf16["runs"])
    pairs = runs.pivot(index="seed", columns="precision", values="marginal")[["fp32", "bf16"]]
    pairs["bf16 - fp32"] = pairs["bf16"] - pairs["fp32"]
    pairs.columns.name = None
    return pairs.round(3)


def bf16_training_summary(bf16: dict) -> str:
    """The mean shift of bfloat16 training with its standard error, the speed-up, and whether
    the 0.1-nat rule for turning it on by default is met."""
    s = bf16["summary"]
    seeds = len({r["seed"] for r in bf16["runs"]})
    met = abs(s["mean_shift"]) + s["sem_shift"] < 0.1
    return (
        f"{bf16['device']}, {bf16['threads']} thread(s): mean shift {s['mean_shift']:+.3f} ± "
        f"{s['sem_shift']:.3f} nats (± one standard error over {seeds} seeds); median epoch "
        f"{s['speedup_median_epoch']:.2f}x faster in bf16; on by default only if it moves "
        "log p(x) by less than 0.1 nats: "
        + ("met" if met else "not shown, so training stays float32 unless --precision bf16")
    )


def libraries_header(libs: dict) -> str:
    return f"{libs['device']}, torch {libs['torch']}, {libs['n_train']} training images"


def libraries_table(libs: dict, entries: dict) -> pd.DataFrame:
    """`benchmarks/compare_libraries.py`: two epochs of each implementation, and the second
    epoch over fit()'s."""
    names = {
        "ours_fit": "jmvae_core fit()",
        "reference_loop": "plain PyTorch loop",
        "multivae": f"multivae {libs['versions']['multivae']}",
        "pixyz": f"pixyz {libs['versions']['pixyz']}",
    }
    rows = {
        label: {
            "epoch 1 (s)": entries[f"{key}_epoch1_s"],
            "epoch 2 (s)": entries[f"{key}_epoch2_s"],
        }
        for key, label in names.items()
    }
    table = pd.DataFrame(rows).T
    ours = table.loc["jmvae_core fit()", "epoch 2 (s)"]
    table["epoch 2 / fit()"] = (table["epoch 2 (s)"] / ours).round(2)
    table.index.name = "implementation"
    return table


def first_speed_header(bench: dict, entries: dict) -> str:
    return (
        f"{bench['device']}, torch {bench['torch']}; k = 1000 marginal log p(x) over 10,000 "
        f"test images: {entries['marginal_k1000_10k_test']:.0f} s"
    )


def first_speed_table(entries: dict) -> pd.DataFrame:
    """`benchmarks/epoch_speed.py`: three epochs of the plain loop and of fit(), and in all."""
    rows = {
        f"epoch {i}": {
            "plain loop (s)": entries[f"reference_loop_epoch{i}"],
            "fit() (s)": entries[f"fit_epoch{i}"],
            "speed-up": entries[f"speedup_epoch{i}"],
        }
        for i in (1, 2, 3)
    }
    rows["total"] = {
        "plain loop (s)": entries["reference_loop_total"],
        "fit() (s)": entries["fit_total"],
        "speed-up": entries["speedup_total"],
    }
    table = pd.DataFrame(rows).T
    table.index.name = "epochs"
    return table


def plan_step_header(step: dict) -> str:
    return (
        f"{step['device']}, torch {step['torch']}, {step['threads']} threads, {step['mode']}, "
        f"groups cut into parts of at most {step['whole_plan']['max_group_runs']} runs; matmul "
        f"peak {step['peak_gflops']:.0f} GFLOP/s; groups one after another: "
        f"{step['groups_one_after_another_ms']:.0f} ms per step"
    )


def plan_step_table(step: dict) -> pd.DataFrame:
    """One training step of the whole plan, and of each group alone."""
    parts = {"whole plan, one step": step["whole_plan"], **step["alone"]}
    rows = {
        name: {
            "runs": r["runs"],
            "operations": r["ops"],
            "ms per step": round(r["ms"], 1),
            "matmul GFLOP": round(r["matmul_gflop"], 2),
            "% of fp32 peak": round(100 * r["peak_fraction"], 1),
        }
        for name, r in parts.items()
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "step of"
    return table


PER_GROUP_KEYS = (
    "device",
    "group",
    "step_mode",
    "epoch_s",
    "steps_per_epoch",
    "ms_per_step",
    "peak_memory_gb",
    "epochs_reached",
    "source",
)


def per_group_table(group: dict) -> pd.DataFrame:
    """The earlier GPU measurement of one group's step (one CUDA graph)."""
    table = pd.Series({k: group[k] for k in PER_GROUP_KEYS}, name="earlier per-group step")
    table.index.name = "measured"
    return table.to_frame()


def gpu_header(gpu: dict) -> str:
    return (
        f"{gpu['device']}, torch {gpu['torch']}: all five estimators, k = {gpu['k']}, "
        f"{gpu['n_test']} test images: {gpu['all_estimators_seconds']:.1f} s"
    )


def gpu_table(gpu: dict) -> pd.DataFrame:
    """`scripts/gpu_check.py`: loss and time of each eager training epoch on the GPU."""
    return pd.DataFrame(gpu["epochs"]).set_index("epoch").round(2)


# ---------------------------------------------------------------------------------- status

PARTS = ("MNIST runs", "face runs", "result notebooks")


def _run_dataset(folder: Path, profile: str) -> str:
    """A run's dataset: its config.json, else its metrics.json, else its id in a face plan."""
    for name in ("config.json", "metrics.json"):
        try:
            return results.read_json(folder / name).get("dataset", "mnist")
        except (OSError, ValueError):
            continue
    for dataset in config.IMAGE_DATASETS:
        if folder.name in {c.run_id for c in config.plan(profile, dataset)}:
            return dataset
    return "mnist"


def _papermill_row(path: Path) -> dict:
    import nbformat

    meta = nbformat.read(path, as_version=4).metadata.get("papermill", {})
    return {
        "notebook": f"notebooks/{path.name}",
        "profile": meta.get("parameters", {}).get("profile"),
        "seconds": round(float(meta.get("duration") or 0.0), 1),
        "finished": (meta.get("end_time") or "")[:19],
        "status": meta.get("exception") and "failed" or ("ok" if meta else "not executed"),
    }


def status_table(profile: str, book_dir: Path = Path(".")) -> pd.DataFrame:
    """Every executed notebook of a profile with papermill's measured time, indexed by
    notebook: `pipeline.notebook_status` (result notebooks, each run's train and evaluate),
    plus the face chapter's notebook where it lacks it; each labelled with its part (MNIST
    runs, face runs, result notebooks) and dataset (a run's from its config.json)."""
    from .pipeline import notebook_status

    table = notebook_status(profile, book_dir)
    columns = ["notebook", "profile", "seconds", "finished", "status"]
    table = table if not table.empty else pd.DataFrame(columns=columns)
    face_nb = Path(book_dir) / "notebooks" / "celeba.ipynb"
    if face_nb.exists() and "notebooks/celeba.ipynb" not in set(table["notebook"]):
        table = pd.concat([table, pd.DataFrame([_papermill_row(face_nb)])], ignore_index=True)
    base = results.results_root() / profile / "runs"
    where = table["notebook"].str.split("/").str[0]
    datasets = {w: _run_dataset(base / w, profile) for w in set(where) if w != "notebooks"}
    table["dataset"] = [datasets.get(w, "—") for w in where]
    table["part"] = [
        "result notebooks"
        if w == "notebooks"
        else "MNIST runs"
        if datasets[w] == "mnist"
        else "face runs"
        for w in where
    ]
    table["seconds"] = table["seconds"].astype(float)
    table["finished"] = table["finished"].astype(str).str.replace("T", " ", regex=False)
    table["order"] = table["part"].map(PARTS.index)
    table = table.sort_values(["order", "notebook"], kind="stable")
    return table.set_index("notebook")[["part", "dataset", "seconds", "finished", "status"]]


def status_minutes(status: pd.DataFrame) -> pd.DataFrame:
    """Notebooks and measured minutes per part, and in all."""
    grouped = status.groupby("part")["seconds"].agg(["count", "sum"]).reindex(list(PARTS))
    grouped = grouped.fillna(0)
    grouped.loc["total"] = [len(status), float(status["seconds"].sum())]
    table = pd.DataFrame(
        {"notebooks": grouped["count"].astype(int), "minutes": (grouped["sum"] / 60).round(1)}
    )
    table.index.name = "part"
    return table


def status_facts(status: pd.DataFrame) -> dict:
    """Measured minutes of the MNIST runs, the face runs, the result notebooks and in all
    (rounded to 0.1 min), for other pages to cite."""
    minutes = status_minutes(status)["minutes"]
    return {
        "mnist": float(minutes["MNIST runs"]),
        "faces": float(minutes["face runs"]),
        "notebooks": float(minutes["result notebooks"]),
        "total": float(minutes["total"]),
    }


# --------------------------------------------------------------------------- faces chapter


def face_banner(dataset: str) -> str:
    """Which data the face chapter was executed on, in capitals for the stand-in."""
    return ft.DATASET_NOTES[dataset]


def face_header(runs: list[dict], profile: str) -> str:
    """The profile, and the runs' width, data sizes, epochs and k."""
    first = next(iter(ft.by_variant(runs).values()))
    marginal = first["estimators"]["marginal"]
    return (
        f"profile {profile} ({config.IMAGE_PROFILE_NOTES[profile]}): "
        f"{len(runs)} runs; conv width {first['width']}; {first['n_train']} training and "
        f"{marginal['n_test']} test faces; {first['epochs']} epochs; k = {marginal['k']}"
    )


def rec_curves(runs: list[dict]) -> pd.DataFrame:
    """The image term (−E log p(x|z), nats per face) of each variant per epoch."""
    curves = pd.concat(
        {
            ft.LABELS[v]: pd.read_csv(Path(r["path"]) / "history.csv").set_index("epoch")["rec_x"]
            for v, r in ft.by_variant(runs).items()
        },
        axis=1,
    )
    curves.columns.name = "model"
    return curves


def rec_table(runs: list[dict]) -> pd.DataFrame:
    """The image term at the last epoch and its drop during that epoch, per model."""
    curves = rec_curves(runs)
    table = pd.DataFrame(
        {"last epoch": curves.iloc[-1].round(1), "drop in the last epoch": _last_drop(curves)}
    )
    table.index.name = "model"
    return table


def _last_drop(curves: pd.DataFrame) -> pd.Series:
    return (-curves.diff()).iloc[-1].round(1)  # NaN with a single epoch


def rec_drop_text(runs: list[dict]) -> str:
    """The range of the last epoch's drop over the models ("a–b" nats)."""
    drop = _last_drop(rec_curves(runs)).dropna()
    if drop.empty:
        return "unknown (one epoch)"
    return f"{drop.min():.0f}–{drop.max():.0f}"


def rec_figure(runs: list[dict], banner: str) -> plt.Figure:
    """The image term per epoch, one line per model, in the book's figure style."""
    curves = rec_curves(runs)
    with plt.rc_context(getattr(plots, "FONT", {})):
        fig, ax = plt.subplots(figsize=(getattr(plots, "WIDE", 12.0), 4.8), layout="constrained")
        for model in curves.columns:
            ax.plot(curves.index, curves[model], marker="o", label=model)
        ax.set(xlabel="epoch", ylabel="nats per face", title=f"−E log p(x|z) per epoch ({banner})")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _closed(fig)


def table2(runs: list[dict]) -> pd.DataFrame:
    """The paper's Table 2 for these runs (face_tables.table2): every estimator of every model
    in both image conventions, "mean ± sem", with the paper's column marked not available."""
    return ft.table2(runs)


def claim4_table(runs: list[dict]) -> pd.DataFrame:
    """face_tables.claim4, indexed by the JMVAE form and the baseline it is compared with."""
    claim = ft.claim4(runs)
    keys = [k for k in ("JMVAE form", "against") if k in claim.columns]
    return claim.set_index(keys) if keys else claim


def claim4_verdict(runs: list[dict], banner: str | None = None) -> str:
    """From face_tables.claim4's comparisons, each decided by two standard errors: supported
    if JMVAE is better in all, not supported if it is worse in any, partly supported if it is
    better in some and the rest are not resolved, else not resolved; and on which data where
    `banner` names them."""
    calls = ft.claim4(runs)["JMVAE better"].tolist()
    yes, no = calls.count("yes"), calls.count("no")
    verdict = ("supported" if yes == len(calls) else "not supported" if no
               else "partly supported" if yes else "not resolved")  # fmt: skip
    result = f"{verdict} ({yes} of {len(calls)} comparisons better by 2 SE, {no} worse)"
    return f"{result} on: {banner}" if banner else result


def recon_figure(runs: list[dict], banner: str) -> plt.Figure:
    """Test faces, then per variant the reconstructions from q(z|x) and from q(z|x,w)."""
    by = ft.by_variant(runs)
    originals = results.load_arrays(next(iter(by.values())))["recon_x"]
    rows, labels = [originals], ["test faces"]
    for variant, run in by.items():
        arrays = results.load_arrays(run)
        for key, where in (("recon_from_x", "q(z|x)"), ("recon_from_xw", "q(z|x,w)")):
            if key in arrays:
                rows.append(arrays[key])
                labels.append(f"{ft.LABELS[variant]}\n{where}")
    fig = ft.face_grid(
        np.concatenate(rows), originals.shape[0], f"Reconstructions ({banner})", row_labels=labels
    )
    return _closed(fig)


ATTRIBUTE_FACE_VARIANTS = ("jmvae_kl_gan", "jmvae_gan", "jmvae_kl_face", "cmma_gan", "cvae_gan")


def attribute_faces_figure(runs: list[dict], banner: str) -> plt.Figure:
    """Per generating variant, the average face generated for each attribute."""
    by = ft.by_variant(runs)
    shown = [v for v in ATTRIBUTE_FACE_VARIANTS if v in by]
    faces = np.concatenate([results.load_arrays(by[v])["attribute_faces"] for v in shown])
    names = [str(n) for n in results.load_arrays(by[shown[0]])["attribute_names"]]
    fig = ft.face_grid(
        faces,
        len(names),
        f"Average generated face per attribute ({banner})",
        col_labels=[n.replace("_", " ") for n in names],
        row_labels=[ft.LABELS[v] for v in shown],
    )
    return _closed(fig)


def edit_figure(runs: list[dict], variant: str, banner: str) -> plt.Figure:
    """Test faces re-generated from q(z|x,w') with one attribute of w flipped."""
    arrays = results.load_arrays(ft.by_variant(runs)[variant])
    edits = [str(e) for e in arrays["edit_names"]]
    title = f"{ft.LABELS[variant]}: flip one attribute ({banner})"
    cols = ["test face"] + [f"flip {e}" for e in edits]
    fig = ft.face_grid(arrays["edit_faces"], 1 + len(edits), title, col_labels=cols)
    return _closed(fig)


def attribute_table(runs: list[dict]) -> pd.DataFrame:
    """Per attribute: accuracy and AUC of attributes read from images, and the positive rate."""
    return ft.attribute_table(runs).round(3)


NO_COHERENCE = "no coherence results for this dataset (no attribute judge is trained for it)"


def coherence_summary(runs: list[dict]) -> pd.DataFrame:
    """Per model: mean coherence over attributes, its chance baseline, and the fraction of
    faces whose every attribute matches; empty where no judge was trained."""
    rows = {
        ft.LABELS[v]: r["coherence"] for v, r in ft.by_variant(runs).items() if "coherence" in r
    }
    if not rows:
        return pd.DataFrame(columns=["mean", "chance", "all_match"])
    table = pd.DataFrame(rows).T[["mean", "chance", "all_match"]].astype(float).round(3)
    table.index.name = "model"
    return table


def judge_accuracy(runs: list[dict]) -> str:
    """The judge's mean accuracy on the real test faces, or why there is none."""
    accs = [r["coherence"]["judge_accuracy"] for r in runs if "coherence" in r]
    return f"{accs[0]:.3f}" if accs else NO_COHERENCE


def kl_gan_coherence(runs: list[dict]) -> str:
    """JMVAE-kl-GAN's coherence with its chance baseline, or why there is none."""
    summary = coherence_summary(runs)
    if "JMVAE-kl-GAN" not in summary.index:
        return NO_COHERENCE
    kl = summary.loc["JMVAE-kl-GAN"]
    return f"{kl['mean']:.3f} (chance {kl['chance']:.3f})"


def coherence_table(runs: list[dict]) -> pd.DataFrame:
    """Per attribute and model: coherence and its chance baseline."""
    return ft.coherence_table(runs).round(3)


def coherence_figure(runs: list[dict], banner: str, label: str = "JMVAE-kl-GAN") -> plt.Figure:
    """One model's per-attribute coherence against chance; a figure saying so where none."""
    table = ft.coherence_table(runs)
    if table.empty or label not in table.columns.get_level_values(0):
        fig, ax = plt.subplots(figsize=(getattr(plots, "WIDE", 12.0), 1.2))
        ax.axis("off")
        text = textwrap.fill(f"{NO_COHERENCE} ({banner})", 100)
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12)
        return _closed(fig)
    title = f"{label}: attribute → face coherence per attribute ({banner})"
    return _closed(ft.coherence_plot(table, label, title))


def face_facts(runs: list[dict]) -> dict:
    """Number of face runs and the largest Table 2 log p(x) (plain sum) with its model."""
    by = ft.by_variant(runs)
    means = {
        ft.LABELS[v]: r["estimators"]["marginal"]["mean"]
        for v, r in by.items()
        if "marginal" in r["estimators"]
    }
    best = max(means, key=means.get)
    return {
        "n_runs": len(runs),
        "best_marginal_model": best,
        "best_marginal": round(float(means[best]), 1),
    }


# --------------------------------------------------------------------------- 2-D latent

LATENT_PANELS = (
    ("vae", None, "VAE: q(z|x)"),
    ("cvae", "CVAE: q(z|x,w)", None),
    ("jmvae_zero", "JMVAE-zero: q(z|x,w)", "JMVAE-zero: q(z|x,0)"),
    ("jmvae_kl", "JMVAE-kl: q(z|x,w)", "JMVAE-kl: q(z|x)"),
)


def latent_runs(runs: list[dict]) -> list[dict]:
    """The runs with a 2-D latent."""
    return [r for r in runs if r["latent_dim"] == 2]


def latent_panels(runs: list[dict]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{panel title: (test-set latent means (N, 2), digit labels)} of the 2-D latent runs;
    image-only inference beside q(z|x,w) for the JMVAE forms."""
    by = {r["variant"]: r for r in latent_runs(runs)}
    panels = {}
    for variant, title_xw, title_x in LATENT_PANELS:
        if variant not in by:
            continue
        a = results.load_arrays(by[variant])
        if title_xw:
            panels[title_xw] = (a["mean_q_z_xw"], a["labels"])
        if title_x:
            panels[title_x] = (a["mean_q_z_x"], a["labels"])
    return panels


def latent_figure(runs: list[dict], profile: str) -> plt.Figure:
    """The 2-D latent means of the test set, one panel per encoder, coloured by digit."""
    caption = f"test-set latent means, latent size 2 ({profile} profile)"
    return _closed(plots.latent_scatter(latent_panels(runs), caption))


def latent_caption(runs: list[dict], profile: str) -> str:
    """tables.caption of the 2-D latent runs: profile, epochs, k, seeds, test images."""
    return tables.caption(latent_runs(runs), profile)


def nearest_mean_accuracy(means: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of points whose nearest class mean (Euclidean, class means of these very
    points) is that of their own class: how well the classes separate in the latent space."""
    classes = np.unique(labels)
    centres = np.stack([means[labels == c].mean(axis=0) for c in classes])
    nearest = classes[((means[:, None, :] - centres[None]) ** 2).sum(-1).argmin(axis=1)]
    return float((nearest == labels).mean())


def latent_separation(runs: list[dict]) -> pd.DataFrame:
    """Per panel: the nearest digit-mean accuracy of the 2-D test means."""
    rows = {
        title: {"nearest digit-mean accuracy": round(nearest_mean_accuracy(m, y), 3)}
        for title, (m, y) in latent_panels(runs).items()
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "encoder"
    return table


def latent_facts(separation: pd.DataFrame) -> dict:
    """The best- and worst-separated panels among the encoders whose z must carry the digit
    (all but CVAE, whose decoder is given the digit), and CVAE's value (None without it)."""
    acc = separation["nearest digit-mean accuracy"]
    cvae = acc[acc.index.str.startswith("CVAE")]
    rest = acc.drop(cvae.index)
    return {
        "best": str(rest.idxmax()),
        "best_accuracy": _plain(rest.max()),
        "worst": str(rest.idxmin()),
        "worst_accuracy": _plain(rest.min()),
        "cvae_accuracy": _plain(cvae.iloc[0]) if len(cvae) else None,
    }


# ----------------------------------------------------------------- the face chapter's prose

AT_CHANCE = ("Smiling", "Mouth_Slightly_Open", "Narrow_Eyes")  # the attributes the text names


def _pct(value: float) -> str:
    return f"{100 * value:.1f} %"


def _csv(run: dict, name: str) -> pd.DataFrame:
    return pd.read_csv(Path(run["path"]) / name).set_index("attribute")


def _edit_spread(run: dict) -> tuple[float, float]:
    """Edit figure of a run: (mean absolute deviation of a face's edits from their own average,
    mean absolute difference of an edit from the test face), in grey levels of 255."""
    arrays = results.load_arrays(run)
    n_edits = len(arrays["edit_names"])
    faces = arrays["edit_faces"].astype(float).reshape(-1, 1 + n_edits, 64, 64, 3)
    edits, original = faces[:, 1:], faces[:, :1]
    spread = np.abs(edits - edits.mean(1, keepdims=True)).mean()
    return float(spread), float(np.abs(edits - original).mean())


def face_text_values(runs: list[dict]) -> dict[str, str]:
    """Every number the face chapter's prose cites, from the runs' files: attribute estimation
    (attributes.csv), coherence (coherence.csv, the judge's accuracy.csv), the edit figures
    (arrays.npz) and the seconds per step (history.csv). Glued as face_<key>; "not available"
    where a run or file is missing."""
    by = ft.by_variant(runs)
    out: dict[str, str] = {}
    kl = by.get("jmvae_kl_gan")
    if kl is not None and (Path(kl["path"]) / "attributes.csv").exists():
        a = _csv(kl, "attributes.csv")
        majority = np.maximum(a["positive_rate"], 1 - a["positive_rate"])
        others = a.drop(index=[n for n in AT_CHANCE if n in a.index])
        out |= {
            "kl_acc": _pct(a["accuracy"].mean()), "majority": _pct(majority.mean()),
            "kl_auc": f"{a['auc'].mean():.3f}", "n_others": str(len(others)),
            "others_auc": f"{others['auc'].min():.3f} and {others['auc'].max():.3f}",
        }  # fmt: skip
        for name in AT_CHANCE:
            if name in a.index:
                out[f"{name}_acc"] = _pct(a.loc[name, "accuracy"])
                out[f"{name}_majority"] = _pct(majority[name])
                out[f"{name}_auc"] = f"{a.loc[name, 'auc']:.3f}"
    same = [by[v] for v in ("jmvae_gan", "jmvae_kl_face") if v in by]
    if same:
        aucs = pd.concat([_csv(r, "attributes.csv")["auc"] for r in same], axis=1)
        three = aucs.loc[[n for n in AT_CHANCE if n in aucs.index]]
        rest = aucs.drop(index=three.index)
        out["same_three_auc"] = f"{three.min().min():.2f}–{three.max().max():.2f}"
        out["same_rest_auc"] = f"{rest.min().min():.2f}–{rest.max().max():.2f}"
    judged = [r for r in runs if "coherence" in r]
    if judged:
        out["judge_mean"] = _pct(judged[0]["coherence"]["judge_accuracy"])
        judge_dir = results.results_root() / judged[0]["profile"]
        found = sorted(judge_dir.glob(f"classifier-{judged[0]['dataset']}-*/accuracy.csv"))
        if found:
            j = pd.read_csv(found[0]).set_index("attribute")["accuracy"]
            out["judge_three"] = ", ".join(_pct(j[n]) for n in AT_CHANCE if n in j.index)
    summary = coherence_summary(runs)
    for variant, key in (("jmvae_kl_gan", "kl"), ("cvae_gan", "cvae"), ("cmma_gan", "cmma"),
                         ("jmvae_kl_face", "kl_face"), ("jmvae_gan", "zero")):  # fmt: skip
        label = ft.LABELS[variant]
        if label in summary.index:
            out[f"coh_{key}"] = f"{summary.loc[label, 'mean']:.3f}"
            out[f"coh_{key}_chance"] = f"{summary.loc[label, 'chance']:.3f}"
            out[f"coh_{key}_all"] = _pct(summary.loc[label, "all_match"])
    order = summary["mean"].sort_values(ascending=False)
    out["coh_order"] = ", ".join(f"{name} ({value:.3f})" for name, value in order.items())
    if kl is not None and (Path(kl["path"]) / "coherence.csv").exists():
        c = _csv(kl, "coherence.csv")
        margin = (c["coherence"] - c["chance"]).sort_values(ascending=False)
        low = margin.index[-1]
        out["margin_top"] = f"{margin.iloc[0]:+.3f} ({margin.index[0]})"
        out["margin_low"] = (
            f"{margin.iloc[-1]:+.3f} ({low}, {c.loc[low, 'coherence']:.3f} against "
            f"{c.loc[low, 'chance']:.3f})"
        )
        out["margin_second_low"] = f"{margin.iloc[-2]:+.3f} ({margin.index[-2]})"
    for variant, key in (("jmvae_kl_gan", "kl"), ("jmvae_gan", "zero")):
        if variant in by and "edit_faces" in results.load_arrays(by[variant]):
            spread, moved = _edit_spread(by[variant])
            out[f"edit_{key}_spread"], out[f"edit_{key}_moved"] = f"{spread:.1f}", f"{moved:.1f}"
    per_step = {}  # median seconds per training step (epoch time / batches per epoch)
    for v, r in by.items():
        if r.get("n_train"):
            batch = results.read_json(Path(r["path"]) / "config.json")["train"]["batch_size"]
            epoch_s = float(np.median(results.load_history(r)["time_s"]))
            per_step[v] = epoch_s / (r["n_train"] // batch)
    gan_steps = [s for v, s in per_step.items() if registry.spec(v).adversarial]
    if gan_steps:
        out["gan_step_s"] = f"{min(gan_steps):.1f}–{max(gan_steps):.1f}"
    if "jmvae_kl_face" in per_step:
        out["kl_face_step_s"] = f"{per_step['jmvae_kl_face']:.1f}"
    return out
