import json

import pytest

from jmvae_core.study import cli


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--variant", "jmvae"], "variant='jmvae' is unknown; allowed:"),
        (["run", "--variant", "jmvae_kl", "--alpha", "-1"], "alpha=-1.0 must be >= 0"),
        (["run", "--variant", "jmvae_kl", "--profile", "fast"], "profile='fast' is unknown"),
        (["run", "--variant", "vae", "--latent-dim", "0"], "latent_dim=0 must be a positive"),
    ],
)
def test_parameter_errors_exit_2_before_any_work(argv, message, capsys, monkeypatch):
    monkeypatch.setattr("jmvae_core.study.runs.run_one", lambda *a, **k: pytest.fail("ran"))
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_run_trains_evaluates_and_prints_the_metrics(tmp_path, capsys):
    argv = ["run", "--variant", "vae", "--profile", "smoke", "--epochs", "1", "--n-train", "200"]
    argv += ["--n-test", "20", "--k", "3", "--device", "cpu", "--results-dir", str(tmp_path)]
    assert cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["run_id"].startswith("vae-z64-s1-")
    assert out["estimators"]["marginal"]["n_test"] == 20
    assert (tmp_path / "smoke" / "runs" / out["run_id"] / "DONE").exists()
