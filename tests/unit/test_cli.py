"""Claims about the CLI's handling of bad input: exit 2, one clear line, nothing written."""

from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from simulations.cli.app import cli

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


def _garbage_cifar10(root):
    """A CIFAR-10 directory whose files exist but are not pickles (a corrupt download)."""
    root.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (root / name).write_bytes(b"\x80\x04not a pickle at all")
    return root


# Each case: args after the command, a phrase of the one-line error (docs/commands.md).
BAD_RUN_CONFIG = [
    (["--set", "num-server-rounds=0"], "num-server-rounds must be in [1, 100000] (got 0)"),  # out of range
    (["--set", "fraction-train=1.5"], "fraction-train must be in (0, 1]"),
    (["--set", "data.dataset=nope"], "data.dataset must be one of"),
    (["--set", "data.partitioner=nope"], "data.partitioner must be one of"),
    (["--set", "data.dirichlet-alpha=-1"], "data.dirichlet-alpha must be > 0"),
    (["--set", "aggregation=mean"], "aggregation must be one of"),
    (["--set", "data.dataset=cifar10", "--set", "data.root={missing}"], "CIFAR-10 not found"),
    (["--set", "data.dataset=cifar10", "--set", "data.root={garbage}"], "not a readable CIFAR pickle"),
    (["--set", "data.dataset=image-folder"], "read from a local directory"),
]
BAD_LIRF = [
    (["--set", "lirf.deposit-classes=7,42"], "has classes 0..9 only"),  # classes that do not exist
    (["--set", "lirf.owner-partition=5"], "owner-partition=5: the federation has partitions 0.."),
]


def _expand(args, tmp_path):
    fill = {"missing": tmp_path / "no-such-dir", "garbage": tmp_path / "cifar"}
    if any("{garbage}" in a for a in args):
        _garbage_cifar10(fill["garbage"])
    return [a.format(**fill) for a in args]


@pytest.mark.parametrize("command", ["simulate", "deploy"])
@pytest.mark.parametrize("scenario,args,needle", [("fedavg", *c) for c in BAD_RUN_CONFIG]
                         + [("lirf", *c) for c in BAD_LIRF])
def test_bad_run_config_exits_2_with_one_line_and_writes_nothing(
    fedvault_cli, tmp_path, command, scenario, args, needle
):
    out = tmp_path / "out"
    nodes = ["--nodes", "3"] if command == "deploy" else []
    proc = fedvault_cli(command, scenario, *nodes, *_expand(args, tmp_path), "--out", str(out))
    assert proc.returncode == 2, proc.stdout
    assert needle in proc.stdout and proc.stdout.count("\n") == 1  # one line, never wrapped
    assert proc.stdout.count("error:") == 1 and "Traceback" not in proc.stdout
    assert not out.exists()


@pytest.mark.parametrize("command", ["simulate", "deploy"])
def test_bad_config_never_touches_an_existing_run_directory(fedvault_cli, tmp_path, command):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text("{}")
    nodes = ["--nodes", "3"] if command == "deploy" else []
    for args in (["--set", "num-rounds=2"], []):  # a bad key, then a good config on a used dir
        proc = fedvault_cli(command, "fedavg", *nodes, *args, "--out", str(out))
        assert proc.returncode == 2, proc.stdout
    assert [p.name for p in out.iterdir()] == ["config.json"]
    assert (out / "config.json").read_text() == "{}"


@pytest.mark.parametrize(
    "args,needle",
    [
        (["deploy", "nope", "--nodes", "2"], "available scenarios"),
        (["deploy", "fedavg", "--nodes", "2", "--set", "method=nope"], "registered methods"),
        (["deploy", "fedavg", "--nodes", "2", "--set", "round-timeout=soon"], "cannot read"),
        (["deploy", "--nodes", "2", "--resume", "{missing}"], "not a fedvault run directory"),
        (["simulate", "--resume", "{missing}"], "not a fedvault run directory"),
        (["bench", "faults", "--seeds", "a,b"], "comma-separated integers"),
        (["audit", "{missing}"], "{missing}"),
        (["node", "--superlink", "127.0.0.1:1", "--insecure", "--partition", "3/3"], "need 0 <= i < n"),
        (["node", "--superlink", "127.0.0.1:1", "--insecure", "--data-dir", "{missing}"], "does not exist"),
        (["node", "--superlink", "127.0.0.1:1", "--partition", "0/2"], "--root-certificates"),
    ],
)
def test_every_command_refuses_bad_input_with_exit_2(fedvault_cli, tmp_path, args, needle):
    fill = {"missing": str(tmp_path / "no-such-dir")}
    proc = fedvault_cli(*[a.format(**fill) for a in args])
    assert proc.returncode == 2, proc.stdout
    assert needle.format(**fill) in proc.stdout.replace("\n", "")


def test_a_resumed_deployment_keeps_its_config(fedvault_cli, tmp_path):
    from server.run_dir import RunDirectory

    run = RunDirectory.create(tmp_path / "run", {"run": {}})
    run.save_checkpoint({}, {"round": 1})
    proc = fedvault_cli("deploy", "--nodes", "2", "--resume", str(run.path), "--set", "seed=3")
    assert proc.returncode == 2 and "--set cannot be combined" in proc.stdout.replace("\n", " ")


def test_the_summary_table_counts_node_devices_instead_of_listing_every_node():
    from rich.console import Console

    from simulations.cli.app import summary_table

    console = Console(width=200, record=True)
    console.print(summary_table({"node_devices": {f"p{i}": "cpu" for i in range(40)}
                                 | {"p40": "cuda:0"}}))
    text = console.export_text()
    assert "cpu × 40, cuda:0 × 1" in text and "p39" not in text
