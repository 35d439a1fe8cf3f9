"""What the setup page shows: the defaults, the profiles and the plan of runs."""

from __future__ import annotations

import dataclasses

import pandas as pd

from jmvae_core import config

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
