"""Run folders: atomic writes, DONE markers, and what result notebooks may read."""

import pytest

from jmvae_core import results
from jmvae_core.config import make_config, plan


def _finish(root, cfg, profile="smoke", done=True):
    folder = results.run_dir(profile, cfg.run_id, root)
    metrics = {"run_id": cfg.run_id, "variant": cfg.model.variant, "estimators": {}}
    results.write_json(folder / "metrics.json", metrics)  # the keys every reader relies on
    if done:
        results.mark_done(folder)
    return folder


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    results.write_json(tmp_path / "a" / "m.json", {"x": 1})
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["m.json"]
    assert results.read_json(tmp_path / "a" / "m.json") == {"x": 1}


def test_load_runs_names_the_missing_runs_and_the_command(tmp_path):
    cfgs = plan("smoke")
    for cfg in cfgs[:-2]:
        _finish(tmp_path, cfg)
    _finish(tmp_path, cfgs[-1], done=False)  # a crashed run: never read
    with pytest.raises(FileNotFoundError, match=r"2 run\(s\) of the smoke profile") as info:
        results.load_runs("smoke", tmp_path)
    assert "jmvae reproduce --profile smoke" in str(info.value)
    assert cfgs[-1].run_id in str(info.value)


def test_load_runs_reads_only_the_plan_unless_asked(tmp_path):
    for cfg in plan("smoke"):
        _finish(tmp_path, cfg)
    extra = make_config("smoke", variant="vae", epochs=7)
    _finish(tmp_path, extra)
    planned = results.load_runs("smoke", tmp_path)
    assert len(planned) == len(plan("smoke"))
    assert extra.run_id not in {r["run_id"] for r in planned}
    every = results.load_runs("smoke", tmp_path, planned_only=False)
    assert extra.run_id in {r["run_id"] for r in every}
