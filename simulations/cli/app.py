"""The `fedvault` command (typer). Exit codes: 0 ok, 1 run failed, 2 bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from methods.config import ConfigError
from server.run_dir import RunDirError, RunDirectory, default_run_dir
from server.runner import Job
from server.scenario import (
    DEFAULT_SCENARIO,
    parse_overrides,
    resolve,
    scenario_description,
    scenario_label,
    scenario_names,
)
from simulations.cli.preflight import check_runnable

cli = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__,
                  pretty_exceptions_show_locals=False)  # locals would dump model weights
console = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    # soft_wrap: one line, never wrapped at the terminal width (users copy it, tests grep it)
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def summary_table(summary: dict) -> Table:
    table = Table(title="summary", show_header=True)
    table.add_column("key")
    table.add_column("value")
    for key, value in sorted(summary.items()):
        text = f"{value:.4f}" if isinstance(value, float) else json.dumps(value)
        table.add_row(key, text[:120])
    return table


def finish(run_dir: Path, summary: dict | None) -> None:
    """Print the run's summary table, or exit 1 with the last events when it failed.

    `summary` is the run's own result (None: it failed), never inferred from the
    directory: a resumed run that fails must not pass for the earlier attempt."""
    if summary is None:
        events = run_dir / "events.log"
        tail = events.read_text().splitlines()[-5:] if events.exists() else []
        fail("the run did not finish:\n  " + "\n  ".join(tail or ["(no events)"]), code=1)
    console.print(summary_table(summary))
    if summary.get("diverged"):
        console.print("[bold yellow]warning:[/] training diverged (see events.log)")
    console.print(f"run directory: [bold]{run_dir}[/]")


def plan_run(scenario: Optional[str], set_: List[str], seed: Optional[int], out: Optional[Path],
             defaults: Optional[dict] = None):
    """Everything a new run is checked against before Ray or any process starts and before
    any file is written: the `--set` items, the typed config and its ranges, the data
    (preflight) and a free run directory. Returns (scenario, spec, run_dir); raises
    ConfigError or RunDirError (exit 2, one line)."""
    scenario = scenario or DEFAULT_SCENARIO
    overrides = parse_overrides(set_)
    if seed is not None:
        overrides["seed"] = str(seed)
    for key, value in (defaults or {}).items():
        overrides.setdefault(key, value)
    spec = resolve(scenario, overrides)
    check_runnable(spec)
    run_dir = out or default_run_dir(scenario_label(scenario), spec.federation.seed)
    RunDirectory.check_free(run_dir)
    return scenario, spec, run_dir


def resumable(run_dir: Path, scenario: Optional[str], set_: List[str], seed: Optional[int],
              out: Optional[Path] = None):
    """The spec and scenario of a run to continue, or ConfigError/RunDirError (exit 2, nothing
    changed): a resumed run keeps its own config, so overrides are refused, and so are a
    corrupt checkpoint, one written for another config, a finished run, another scenario."""
    from methods.resolve import parse_run_spec

    for flag, given in (("--set", bool(set_)), ("--seed", seed is not None), ("--out", out is not None)):
        if given:
            raise ConfigError(f"--resume continues a run with its own config: {flag} cannot be "
                              "combined with it")
    run, _, _ = RunDirectory.open_for_resume(run_dir)
    config = run.config()
    if scenario is not None and scenario != config.get("scenario"):
        raise ConfigError(f"{run_dir} is a run of scenario {config.get('scenario')!r}, not "
                          f"{scenario!r}: a run resumes only as itself (omit the scenario)")
    if not isinstance(config.get("run"), dict):
        raise RunDirError(f"{run_dir / 'config.json'} has no resolved run config ('run')")
    return parse_run_spec(config["run"]), str(config.get("scenario", ""))


SCENARIO_HELP = f"scenario name (fedvault scenarios) or path/to/scenario.toml [default: {DEFAULT_SCENARIO}]"


@cli.command()
def simulate(
    scenario: Optional[str] = typer.Argument(None, help=SCENARIO_HELP, show_default=False),
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
            spec, scenario = resumable(resume, scenario, set_, seed, out)
            job = Job(spec=None, run_dir=str(resume), resume=True)
        else:
            scenario, spec, run_dir = plan_run(scenario, set_, seed, out)
            job = Job(spec=spec, run_dir=str(run_dir), scenario=scenario)
    except (ConfigError, RunDirError) as exc:
        fail(str(exc))
    total, nodes = spec.federation.num_server_rounds, spec.federation.num_clients
    job.progress = lambda record: console.print(round_line(record, total), soft_wrap=True)
    console.print(f"[bold]{escape(scenario)}[/]: {nodes} simulated nodes, {total} rounds → {job.run_dir}")
    try:
        run_in_process(job, nodes, ray_address=ray_address, verbose=verbose)
    except Exception as exc:  # the ServerApp's error: summarised, details in events.log
        job.error = job.error or f"{type(exc).__name__}: {exc}"
    if job.error:
        err.print(f"[bold red]the run failed:[/] {escape(job.error)}", soft_wrap=True)
    finish(Path(job.run_dir), job.result)


@cli.command()
def deploy(
    scenario: Optional[str] = typer.Argument(None, help=SCENARIO_HELP, show_default=False),
    nodes: int = typer.Option(..., "--nodes", min=1, help="number of SuperNodes to start"),
    insecure: bool = typer.Option(False, "--insecure", help="no TLS and no node authentication"),
    out: Optional[Path] = typer.Option(None, "--out", help="run directory to create"),
    set_: List[str] = typer.Option([], "--set", help="key=value override (repeatable)"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="continue this run directory"),
    keep_temp: bool = typer.Option(False, "--keep-temp", help="keep /tmp/fvdeploy-* (keys, certificates, Flower's database, logs)"),
) -> None:
    """Run a scenario over a real gRPC federation on 127.0.0.1 (TLS + node auth by default)."""
    from simulations.deploy.local_federation import DeploymentError
    from simulations.deploy.scenario import deploy as deploy_scenario
    from simulations.simulate import round_line

    try:
        if resume is not None:
            run_dir, overrides = resume.resolve(), {}
            spec, scenario = resumable(run_dir, scenario, set_, None, out)
        else:
            scenario, spec, run_dir = plan_run(scenario, set_, None, out, {"num-clients": str(nodes)})
            overrides = parse_overrides(set_)
            overrides.setdefault("num-clients", str(nodes))
            run_dir = run_dir.resolve()
            if scenario.endswith(".toml"):  # the ServerApp reads it from another directory
                scenario = str(Path(scenario).resolve())
    except (ConfigError, RunDirError) as exc:
        fail(str(exc))
    total = spec.federation.num_server_rounds
    mode = "insecure" if insecure else "TLS + SuperNode authentication"
    console.print(f"[bold]{escape(scenario)}[/]: SuperLink + {nodes} SuperNodes on 127.0.0.1 ({mode}) → {run_dir}")
    try:
        status = deploy_scenario(scenario, spec, overrides, nodes=nodes, run_dir=run_dir,
                                 secure=not insecure, resume=resume is not None, keep_temp=keep_temp,
                                 on_record=lambda r: console.print(round_line(r, total), soft_wrap=True))
    except DeploymentError as exc:
        fail(str(exc), code=1)
    if status != "finished:completed":  # the run's own result, as the SuperLink reports it
        fail(f"the run ended {status}; ServerApp log: {run_dir / 'serverapp.log'}", code=1)
    summary_path = run_dir / "summary.json"
    finish(run_dir, json.loads(summary_path.read_text()) if summary_path.is_file() else None)


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
    require_dp: bool = typer.Option(False, "--require-dp", help="refuse any request that would use this node's records without sample-level DP-SGD"),
    min_noise_multiplier: float = typer.Option(0.0, "--min-noise-multiplier", help="refuse DP rounds with a smaller σ (implies --require-dp)"),
    max_epsilon: float = typer.Option(0.0, "--max-epsilon", help="refuse runs whose ε budget is larger, never spend more (implies --require-dp)"),
    allow_audit: bool = typer.Option(False, "--allow-audit", help="with --require-dp: still answer the privacy audit phase (its scores are outside the guarantee)"),
) -> None:
    """Start one real client: a SuperNode whose data stay on this host."""
    from simulations.cli.node import NodeArgumentError, NodeOptions, exec_node

    opts = NodeOptions(superlink, root_certificates, auth_key, insecure, data_dir, partition,
                       teacher, state_dir, port, require_dp, min_noise_multiplier, max_epsilon,
                       allow_audit)
    try:
        exec_node(opts)
    except NodeArgumentError as exc:
        fail(str(exc))


@cli.command()
def certs(
    out: Path = typer.Option(Path("certs"), "--out", help="directory for ca.crt, server.pem, server.key"),
    san: List[str] = typer.Option([], "--san", help="a host name or IP address the nodes dial (repeatable)"),
    days: int = typer.Option(365, "--days", min=1, help="validity of both certificates"),
) -> None:
    """Make a CA and the SuperLink's TLS certificate (it always names localhost and 127.0.0.1)."""
    from simulations.deploy.tls import generate_tls, san_entries

    if (out / "ca.crt").exists():
        fail(f"{out / 'ca.crt'} exists: nodes may already trust it; remove it or choose another --out")
    try:
        names = [str(n.value) for n in san_entries(san)]
        files = generate_tls(out, days=days, san=san)
    except ValueError as exc:
        fail(str(exc))
    console.print(f"{files.ca_cert}  (public: copy it to every node and to flwr's connection)")
    console.print(f"{files.server_cert}, {files.server_key}  (the SuperLink's; the key is 0600)")
    console.print(f"valid {days} days for: {', '.join(names)}")


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

