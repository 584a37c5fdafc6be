"""Claims about the CLI's handling of bad input: exit 2, one clear line, nothing written."""

from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from simulations.cli import cli

pytestmark = pytest.mark.unit


@pytest.fixture
def fedvault_cli():
    """In process (fast): the CLI fails before anything heavy starts."""
    runner = CliRunner()

    def run(*args, check=False):
        result = runner.invoke(cli, list(args))
        if check:
            assert result.exit_code == 0, result.output
        return SimpleNamespace(returncode=result.exit_code, stdout=result.output, stderr=result.output)

    return run


@pytest.mark.parametrize(
    "args,needle",
    [
        (["simulate", "nope"], "available scenarios"),
        (["simulate", "fedavg", "--set", "num-rounds=2"], "valid keys"),
        (["simulate", "fedavg", "--set", "num-server-rounds=x"], "cannot read"),
        (["simulate", "fedavg", "--set", "method=nope"], "registered methods"),
        (["bench", "nope"], "unknown benchmark"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(fedvault_cli, tmp_path, args, needle):
    out = tmp_path / "out"
    proc = fedvault_cli(*args, "--out", str(out)) if args[0] == "simulate" else fedvault_cli(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert needle in (proc.stdout + proc.stderr).replace("\n", " ")
    assert not out.exists()


def test_an_existing_run_directory_is_not_overwritten(fedvault_cli, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text("{}")
    proc = fedvault_cli("simulate", "fedavg", "--out", str(out))
    assert proc.returncode == 2 and "already holds a run" in proc.stderr.replace("\n", " ")
    assert (out / "config.json").read_text() == "{}"


def test_methods_and_scenarios_are_listed(fedvault_cli):
    assert "fedavg" in fedvault_cli("methods", check=True).stdout
    assert "fedavg" in fedvault_cli("scenarios", check=True).stdout
