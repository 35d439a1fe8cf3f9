"""What the performance page shows, from the committed benchmarks (benchmarks/results/)."""

from __future__ import annotations

import re

import pandas as pd

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


def cpu_header(bench: dict) -> str:
    """The machine a CPU benchmark ran on: model, vector extensions, device and torch."""
    return (
        f"{bench['cpu']['model']} ({', '.join(bench['cpu']['flags'])}), "
        f"{bench['device']}, torch {bench['torch']}"
    )


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
        "header": cpu_header(bench),
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


FLOOR_PARTS = {"forward": "matmuls: forward", "weight_grad": "matmuls: weight gradients",
               "input_grad": "matmuls: input gradients", "adam": "Adam (fused kernel)",
               "norms": "gradient norms (clipping)"}  # fmt: skip
TARGET = 1.6  # the speed-up asked of a step at equal numbers


def step_floor_table(bench: dict) -> pd.DataFrame:
    """benchmarks/step_floor.py: by thread count, the floor of a step at equal numbers (each
    kernel it must run, timed alone) against the whole steps, and what a step TARGET times
    faster than the reference would leave for everything outside the floor."""
    rows = {}
    for r in bench["by_threads"]:
        t = f"{r['threads']} thread{'s' if r['threads'] > 1 else ''}"
        floor, ref = r["floor_ms"], r["step_ms"]["reference"]
        for key, label in FLOOR_PARTS.items():
            rows[(t, label)] = floor[key]
        rows[(t, "floor")] = floor["total"]
        rows[(t, "reference step")] = ref
        rows[(t, "fit's step")] = r["step_ms"]["fit"]
        rows[(t, "of which in matmuls")] = r["matmul_in_step_ms"]
        rows[(t, f"a step {TARGET}x faster than the reference")] = ref / TARGET
    table = pd.DataFrame({"ms": rows}).round(2)
    table.index.names = ["threads", "part"]
    return table


def step_floor_values(bench: dict) -> dict:
    """The figures the Performance page cites from benchmarks/step_floor.py, by glue name, per
    thread count n: the floor (floor_n), the reference step (ref_n), the most a step at equal
    numbers could gain (most_n), the time a step TARGET times faster would take (target_n) and
    leave for the work outside the floor (room_n), what that work takes in fit's step today
    (now_n: the step less its matmuls, Adam and norms at their floor), and how much longer the
    matmuls take inside the step than alone (mm_slower_n, %); and the machine (header)."""
    values = {
        "target": f"{TARGET}",
        "header": cpu_header(bench),
    }
    for r in bench["by_threads"]:
        n, floor = r["threads"], r["floor_ms"]
        ref, ours, mm = r["step_ms"]["reference"], r["step_ms"]["fit"], r["matmul_in_step_ms"]
        alone = floor["forward"] + floor["weight_grad"] + floor["input_grad"]
        values |= {
            f"floor_{n}": f"{floor['total']:.1f}",
            f"ref_{n}": f"{ref:.1f}",
            f"most_{n}": f"{ref / floor['total']:.2f}",
            f"target_{n}": f"{ref / TARGET:.1f}",
            f"room_{n}": f"{ref / TARGET - floor['total']:.1f}",
            f"now_{n}": f"{ours - mm - floor['adam'] - floor['norms']:.1f}",
            f"mm_slower_{n}": f"{round(100 * (mm / alone - 1))}",
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
