"""Claims about docs/multihost.md that hold without a network: it keeps the Control API on
loopback, its commands parse with the tools they name, and it has every step the
multi-host test (tests/integration/test_multihost.py) walks."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

import click
import pytest
import typer

from server.scenario import parse_overrides, resolve, split_override_string
from simulations.cli.app import cli
from tests.multihost_guide import GUIDE, Block, Copy, steps

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = {"$SUPERLINK_HOST": "10.0.0.5", "$FEDVAULT_SRC": "/src/fedvault", "$NODE": "node0",
           "$DATA_DIR": "/data/shard", "$PWD": "/work",
           "${FLWR_HOME:-$HOME/.flwr}": "/home/op/.flwr"}


def _blocks(host: str | None = None) -> list[Block]:
    return [s for s in steps() if isinstance(s, Block) and host in (None, s.host)]


def _commands(block: Block) -> list[list[str]]:
    """Each command line of a block (continuations joined, variables given example values)."""
    text = block.text.replace("\\\n", " ")
    for var, value in sorted(EXAMPLE.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(var, value)
    return [shlex.split(line) for line in text.splitlines() if line.strip() and "<<" not in line
            and not line.startswith(("[", "address", "root-certificates", "EOF"))]


def _superlink_argv() -> list[str]:
    (service,) = [b for b in _blocks("superlink") if b.service]
    (argv,) = _commands(service)
    assert argv[0] == "flower-superlink"
    return argv[1:]


def test_the_control_api_stays_on_the_superlink_hosts_loopback():
    from flwr.superlink.cli.flower_superlink import _parse_args_run_superlink

    args = _parse_args_run_superlink().parse_args(_superlink_argv())  # Flower's own parser
    assert args.host == "127.0.0.1"
    assert not args.insecure and args.enable_supernode_auth
    assert args.fleet_api_type == "grpc-rere" and args.fleet_api_address.endswith(":9092")
    assert all(getattr(args, f) for f in ("ssl_ca_certfile", "ssl_certfile", "ssl_keyfile"))
    for block in _blocks():
        assert "--host 0.0.0.0" not in block.text and "--control-api-address" not in block.text


def test_the_flwr_connection_is_valid_toml_on_loopback():
    (setup,) = [b for b in _blocks("superlink") if "config.toml" in b.text]
    body = setup.text.split("<<EOF\n", 1)[1].split("\nEOF", 1)[0].replace("$PWD", "/work")
    connection = tomllib.loads(body)["superlink"]["fedvault"]
    assert connection == {"address": "127.0.0.1:9093", "root-certificates": "/work/certs/ca.crt"}


def test_every_fedvault_command_of_the_guide_parses_with_the_cli():
    group = typer.main.get_command(cli)
    found = set()
    for block in _blocks():
        for argv in _commands(block):
            if argv[0] != "fedvault":
                continue
            command = group.get_command(click.Context(group), argv[1])
            assert command is not None, f"docs/multihost.md:{block.line}: no `fedvault {argv[1]}`"
            command.make_context(argv[1], argv[2:])  # raises on an unknown or malformed option
            found.add(argv[1])
    assert found == {"certs", "node"}


def test_the_guides_run_is_sized_to_its_two_nodes_and_its_overrides_resolve():
    (run,) = [b for b in _blocks("superlink") if "flwr run" in b.text]
    argv = _commands(run)[0]
    from flwr.common.config import parse_config_args

    config = parse_config_args([argv[argv.index("-c") + 1]])  # as `flwr run -c` parses it
    assert set(config) <= {"scenario", "overrides", "run-dir", "resume"}  # the app's keys
    spec = resolve(config.get("scenario", "fedavg"),
                   parse_overrides(split_override_string(config["overrides"])))
    assert spec.federation.num_clients == 2 and spec.federation.round_timeout > 0


def test_the_guide_has_every_step_the_multihost_test_walks():
    walk = steps()
    blocks = [s for s in walk if isinstance(s, Block)]
    assert [b.host for b in blocks if b.service] == ["superlink", "node"]
    assert any("each-node" in b.flags and "supernode register" in b.text for b in blocks)
    assert {(c.src_host, c.dst_host) for c in walk if isinstance(c, Copy)} == {
        ("superlink", "node"), ("node", "superlink"), ("superlink", "stranger")}
    refused = " ".join(b.text for b in blocks if "refused" in b.flags)
    for attempt in ("flwr ls", "flwr run", "flwr supernode register", "fedvault node"):
        assert attempt in refused, f"the stranger never tries `{attempt}`"
    assert all(b.host == "stranger" for b in blocks if "refused" in b.flags)


def test_a_malformed_block_is_an_error_not_a_skipped_step():
    with pytest.raises(ValueError, match="unknown block attributes"):
        steps("```bash host=superlink servce\nflwr ls\n```\n")
    with pytest.raises(ValueError, match="HOST:PATH"):
        steps("```text copy\nca.crt to the node\n```\n")


def test_the_readme_sends_operators_to_the_guide():
    readme = (REPO / "README.md").read_text()
    assert "docs/multihost.md" in readme and "--host 0.0.0.0" not in readme
    assert GUIDE.is_file()
