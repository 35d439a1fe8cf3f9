"""Runs trained together by the plan notebook (`reproduce --batched`): each run as train.fit
trains it alone, the folders a per-run training leaves, a filtered plan then the rest, and
runs train.fit has begun left to it."""

import json

import nbformat
import pytest
import torch

from jmvae_core import environment, store
from jmvae_core.config import make_config, plan
from jmvae_core.data.mnist import load_mnist
from jmvae_core.pages import status
from jmvae_core.study import cli, pipeline, plan_training
from jmvae_core.training.fit import CHECKPOINT, fit


def _small(variant, **kw):
    return make_config("smoke", variant=variant, n_train=500, epochs=2, **kw)


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_plan_trains_each_run_bitwise_as_fit_alone(tmp_path, one_thread):
    cfgs = [_small("vae"), _small("jmvae_kl", alpha=0.1), _small("jmvae_kl", alpha=1.0)]
    runs = [store.Run(c, "smoke", tmp_path / "plan") for c in cfgs]
    histories = plan_training.train_plan(runs, device="cpu", progress=False)
    data = load_mnist(n_train=500, n_test=200)
    for run, history in zip(runs, histories, strict=True):
        assert run.state() == "trained"
        model, alone = fit(run.cfg, data, tmp_path / "alone" / run.id, "cpu", progress=False)
        assert [r["loss"] for r in history] == [r["loss"] for r in alone]
        saved = store.load_torch(run.folder / CHECKPOINT)["model"]
        assert _same_weights(saved, model.state_dict())
        trained = store.read_json(run.folder / store.TRAINED)
        assert trained["batched"] == {"draws": "step", "step_mode": "eager", "batch_runs": 3}
        assert (run.folder.parents[1] / trained["trained_by"]).parent.is_dir()
    # the plan's state is gone once the run folders hold the weights
    assert not list((tmp_path / "plan").rglob(plan_training.PLAN_STATE))


def test_a_wrong_seed_is_not_bitwise_fit(tmp_path, one_thread):
    """The comparison above can fail: another seed's run differs."""
    run = store.Run(_small("vae"), "smoke", tmp_path)
    plan_training.train_plan([run], device="cpu", progress=False)
    data = load_mnist(n_train=500, n_test=200)
    model, _ = fit(_small("vae", seed=2), data, tmp_path / "other", "cpu", progress=False)
    saved = store.load_torch(run.folder / CHECKPOINT)["model"]
    assert not _same_weights(saved, model.state_dict())


def test_history_csv_reads_back_as_pandas_writes_it():
    pd = pytest.importorskip("pandas")
    rows = [{"epoch": 0, "loss": 101.25, "draws": "step"}, {"epoch": 1, "loss": 0.1 + 0.2}]
    assert plan_training.history_csv(rows) == pd.DataFrame(rows).to_csv(index=False)


def test_runs_begun_by_fit_successors_and_trained_runs_are_left_out(tmp_path):
    begun = store.Run(_small("cvae"), "smoke", tmp_path)

    def interrupt(row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        data = load_mnist(n_train=500, n_test=200)
        fit(begun.cfg, data, begun.folder, "cpu", progress=False, on_epoch_end=interrupt)
    successor = store.Run(make_config("quick", variant="mvae"), "quick", tmp_path)
    fresh = store.Run(_small("cmma"), "smoke", tmp_path)
    assert plan_training.to_train([begun, successor, fresh]) == [fresh]
    assert not plan_training.batchable(make_config("smoke", variant="vae", precision="bf16"))


def test_reproduce_batched_trains_a_filtered_plan_then_only_the_rest(tmp_path, monkeypatch):
    """`jmvae reproduce --batched` on the smoke profile (a 1-epoch trial): a run filter first,
    then the whole plan; every run trained by a plan notebook and evaluated. The result
    notebooks (tested with the per-run path in test_pipeline.py) are recorded, not made."""
    monkeypatch.setenv(environment.RESULTS_ENV, str(tmp_path / "results"))
    monkeypatch.delenv(environment.THREADS_ENV, raising=False)
    pages = []
    monkeypatch.setattr(pipeline, "_make_pages", lambda *a: pages.append(a) or (None, None))
    trial = {"epochs": 1}
    first = pipeline.reproduce(
        "smoke", device="cpu", overrides=trial, build=False, progress=False, batched=True,
        only={"variant": ["vae", "jmvae_kl"]},
    )  # fmt: skip
    assert first.waiting == 5 and not pages
    argv = ["reproduce", "--profile", "smoke", "--epochs", "1", "--device", "cpu", "--batched"]
    assert cli.main([*argv, "--no-build"]) == 0
    assert len(pages) == 1
    root = environment.results_root() / "trials" / "mnist-epochs1" / "results"
    cfgs = plan("smoke", **trial)
    notebooks = sorted((root / "smoke" / "plans").glob(f"*/{plan_training.NOTEBOOK}.ipynb"))
    assert len(notebooks) == 2  # the filtered part, then the rest
    trained_ids = []
    for path in notebooks:
        params = _parameters(path)
        assert params["profile"] == "smoke"
        trained_ids.append(set(params["run_ids"]))
    assert sorted(map(len, trained_ids)) == [5, 6]
    assert set.union(*trained_ids) == {c.run_id for c in cfgs}
    assert not set.intersection(*trained_ids)
    assert set(notebooks) <= set(status.status_sources("smoke", root=root))  # the Status page
    for cfg in cfgs:
        run = store.Run(cfg, "smoke", root)
        assert run.finished(), cfg.run_id
        assert not (run.folder / "train.ipynb").exists()
        assert (run.folder / "evaluate.ipynb").exists()
        trained_by = store.read_json(run.folder / store.TRAINED)["trained_by"]
        assert (root / "smoke" / trained_by).exists()
    # on the kernel's one thread, the plan's VAE is the VAE fit trains alone
    vae = store.Run(cfgs[0], "smoke", root)
    data = load_mnist(n_train=cfgs[0].train.n_train, n_test=200)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, _ = fit(vae.cfg, data, tmp_path / "alone", "cpu", progress=False)
    finally:
        torch.set_num_threads(threads)
    saved = store.load_torch(vae.folder / CHECKPOINT)["model"]
    assert _same_weights(saved, model.state_dict())


def _parameters(path) -> dict:
    """The parameters papermill injected into an executed notebook."""
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    scope: dict = {}
    exec(cell.source, {"null": None, "true": True, "false": False, "json": json}, scope)
    return scope
