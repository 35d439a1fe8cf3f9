import pytest

from jmvae_core import cli


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
    monkeypatch.setattr("jmvae_core.runs.run_one", lambda *a, **k: pytest.fail("ran"))
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
