"""The `fedvault` command (typer). Exit codes: 0 ok, 1 run failed, 2 bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from methods.config import ConfigError
from server.run_dir import RunDirError, RunDirectory, default_run_dir
from server.runner import Job
from server.scenario import (
    DEFAULT_SCENARIO,
    parse_overrides,
    resolve,
    scenario_description,
    scenario_names,
)
from simulations.preflight import check_runnable

cli = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__,
                  pretty_exceptions_show_locals=False)  # locals would dump model weights
console = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def summary_table(summary: dict) -> Table:
    table = Table(title="summary", show_header=True)
    table.add_column("key")
    table.add_column("value")
    for key, value in sorted(summary.items()):
        text = f"{value:.4f}" if isinstance(value, float) else json.dumps(value)
        table.add_row(key, text[:120])
    return table


def finish(run_dir: Path) -> None:
    """Print the summary table, or exit 1 with the last events when the run failed."""
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        events = run_dir / "events.log"
        tail = events.read_text().splitlines()[-5:] if events.exists() else []
        fail("the run did not finish:\n  " + "\n  ".join(tail or ["(no events)"]), code=1)
    console.print(summary_table(json.loads(summary_path.read_text())))
    console.print(f"run directory: [bold]{run_dir}[/]")


@cli.command()
def simulate(
    scenario: str = typer.Argument(DEFAULT_SCENARIO, help="scenario name (fedvault scenarios)"),
    out: Optional[Path] = typer.Option(None, "--out", help="run directory to create"),
    seed: Optional[int] = typer.Option(None, "--seed", help="overrides the scenario's seed"),
    set_: List[str] = typer.Option([], "--set", help="key=value override (repeatable)"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue this run directory"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", envvar="RAY_ADDRESS",
                                              help="run on an existing Ray cluster"),
    verbose: bool = typer.Option(False, "--verbose", help="show Flower's and Ray's logs"),
) -> None:
    """Run a scenario with Flower's Simulation Engine."""
    from simulations.simulate import round_line, run_in_process

    try:
        if resume is not None:
            run = RunDirectory.open_existing(resume)
            run.load_checkpoint()  # refuse a corrupt checkpoint before starting Ray
            flat = run.config()["run"]
            job = Job(spec=None, run_dir=str(resume), resume=True)
            total, nodes = int(flat["num-server-rounds"]), int(flat["num-clients"])
        else:
            overrides = parse_overrides(set_)
            if seed is not None:
                overrides["seed"] = str(seed)
            spec = resolve(scenario, overrides)
            check_runnable(spec)
            run_dir = out or default_run_dir(scenario, spec.federation.seed)
            RunDirectory.check_free(run_dir)
            job = Job(spec=spec, run_dir=str(run_dir), scenario=scenario)
            total, nodes = spec.federation.num_server_rounds, spec.federation.num_clients
    except (ConfigError, RunDirError) as exc:
        fail(str(exc))
    job.progress = lambda record: console.print(round_line(record, total))
    console.print(f"[bold]{scenario}[/]: {nodes} simulated nodes, {total} rounds → {job.run_dir}")
    try:
        run_in_process(job, nodes, ray_address=ray_address, verbose=verbose)
    except Exception as exc:  # the ServerApp's error: summarised, details in events.log
        err.print(f"[bold red]the run failed:[/] {type(exc).__name__}: {exc}")
    finish(Path(job.run_dir))


@cli.command()
def deploy(
    scenario: str = typer.Argument(DEFAULT_SCENARIO, help="scenario name (fedvault scenarios)"),
    nodes: int = typer.Option(..., "--nodes", min=1, help="number of SuperNodes to start"),
    insecure: bool = typer.Option(False, "--insecure", help="no TLS and no node authentication"),
    out: Optional[Path] = typer.Option(None, "--out", help="run directory to create"),
    set_: List[str] = typer.Option([], "--set", help="key=value override (repeatable)"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue this run directory"),
) -> None:
    """Run a scenario over a real gRPC federation on 127.0.0.1 (TLS + node auth by default)."""
    from simulations.deploy import FederationError
    from simulations.deploy_scenario import deploy as deploy_scenario
    from simulations.simulate import round_line

    try:
        if resume is not None:
            run_dir, overrides = resume.resolve(), {}
            spec, scenario = _resumable(run_dir, set_)
        else:
            overrides = parse_overrides(set_)
            overrides.setdefault("num-clients", str(nodes))
            spec = resolve(scenario, overrides)
            check_runnable(spec)
            run_dir = (out or default_run_dir(scenario, spec.federation.seed)).resolve()
            RunDirectory.check_free(run_dir)
    except (ConfigError, RunDirError) as exc:
        fail(str(exc))
    total = spec.federation.num_server_rounds
    mode = "insecure" if insecure else "TLS + SuperNode authentication"
    console.print(f"[bold]{scenario}[/]: SuperLink + {nodes} SuperNodes on 127.0.0.1 ({mode}) → {run_dir}")
    try:
        status = deploy_scenario(scenario, spec, overrides, nodes=nodes, run_dir=run_dir,
                                 secure=not insecure, resume=resume is not None,
                                 on_record=lambda r: console.print(round_line(r, total)))
    except FederationError as exc:
        fail(str(exc), code=1)
    if status != "finished:completed":
        fail(f"the run ended {status}; ServerApp log: {run_dir / 'serverapp.log'}", code=1)
    finish(run_dir)


def _resumable(run_dir: Path, set_: List[str]):
    """The spec and scenario of a run to continue; a corrupt checkpoint is refused here,
    before any process starts, and so are overrides (a resumed run keeps its config)."""
    from methods.base import parse_run_spec

    if set_:
        raise ConfigError("--resume continues a run with its own config: --set cannot be combined with it")
    run = RunDirectory.open_existing(run_dir)
    run.load_checkpoint()
    config = run.config()
    return parse_run_spec(config["run"]), str(config.get("scenario", ""))


@cli.command()
def node(
    superlink: str = typer.Option(..., "--superlink", help="the SuperLink's Fleet API HOST:PORT"),
    root_certificates: Optional[Path] = typer.Option(None, "--root-certificates", help="CA certificate (PEM) for TLS"),
    auth_key: Optional[Path] = typer.Option(None, "--auth-key", help="this node's registered private key (OpenSSH)"),
    insecure: bool = typer.Option(False, "--insecure", help="no TLS, no node authentication"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="this node's own image folder"),
    partition: Optional[str] = typer.Option(None, "--partition", help="demo data: partition i/n of the bundled set"),
    teacher: Optional[Path] = typer.Option(None, "--teacher", help="a private teacher checkpoint (FedSA)"),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="where this node keeps private state (LIRF deposits)"),
    port: Optional[int] = typer.Option(None, "--port", help="the node's local Runtime API port (default: a free one)"),
) -> None:
    """Start one real client: a SuperNode whose data stay on this host."""
    from simulations.node import NodeArgumentError, NodeOptions, exec_node

    opts = NodeOptions(superlink, root_certificates, auth_key, insecure, data_dir, partition,
                       teacher, state_dir, port)
    try:
        exec_node(opts)
    except NodeArgumentError as exc:
        fail(str(exc))


@cli.command()
def bench(
    name: str = typer.Argument(..., help="benchmark name"),
    out: Optional[Path] = typer.Option(None, "--out", help="write the JSON result here"),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="comma-separated seeds"),
) -> None:
    """Run a benchmark; prints JSON with its figures and a pass flag."""
    from simulations.bench import BENCHES, run_bench

    if name not in BENCHES:
        fail(f"unknown benchmark {name!r}; available: {', '.join(sorted(BENCHES)) or '(none)'}")
    try:
        seed_list = [int(s) for s in seeds.split(",")] if seeds else None
    except ValueError:
        fail(f"--seeds expects comma-separated integers, got {seeds!r}")
    result = run_bench(name, out, seed_list)
    console.print_json(json.dumps(result))
    if not result.get("pass", False):
        raise typer.Exit(1)


@cli.command()
def audit(
    run_dir: Path = typer.Argument(..., help="a run directory (fedvault simulate --out)"),
    out: Optional[Path] = typer.Option(None, "--out", help="report directory (default RUN_DIR/audit)"),
) -> None:
    """Write the run's privacy audit report; exit 1 when a check FAILs, 2 for a bad run dir."""
    from server.audit.report import ReportError, write_report

    try:
        report = write_report(run_dir, out)
    except ReportError as exc:
        fail(str(exc))
    table = Table(title=f"privacy audit: {report['verdict']}", show_header=True)
    for column in ("id", "check", "status", "detail"):
        table.add_column(column)
    for check in report["checks"]:
        table.add_row(check["id"], check["name"], check["status"], check["detail"][:100])
    console.print(table)
    console.print(f"report: [bold]{(out or run_dir / 'audit') / 'report.html'}[/]")
    if report["verdict"] == "FAIL":
        raise typer.Exit(1)


@cli.command()
def scenarios() -> None:
    """List the scenarios."""
    for name in scenario_names():
        console.print(f"[bold]{name:14}[/] {scenario_description(name)}")


@cli.command()
def methods() -> None:
    """List the registered methods."""
    from methods.registry import get_method, method_names

    for name in method_names():
        console.print(f"[bold]{name:14}[/] {get_method(name).paper}")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
