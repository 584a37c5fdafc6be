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
from server.pool import check_pool_transport
from server.runner import Job, server_device
from server.tracking import check_tracking
from server.scenario import (
    DEFAULT_SCENARIO,
    add_scenario_method_path,
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
        if key == "node_devices" and isinstance(value, dict):
            text = _device_counts(value)  # one entry per node: 10,000 nodes do not fit a cell
        table.add_row(key, text[:120])
    return table


def _device_counts(node_devices: dict) -> str:
    """{"p0": "cpu", "p1": "cpu", "p2": "cuda:0 (…)"} → 'cpu × 2, cuda:0 (…) × 1'
    (summary.json keeps the per-node mapping)."""
    counts: dict[str, int] = {}
    for device in node_devices.values():
        counts[str(device)] = counts.get(str(device), 0) + 1
    return ", ".join(f"{device} × {n}" for device, n in sorted(counts.items()))


def finish(run_dir: Path, summary: dict | None) -> None:
    """Print the run's summary table, or exit 1 with the last events when it failed.

    `summary` is the run's own result (None: it failed), never inferred from the
    directory: a resumed run that fails must not pass for the earlier attempt."""
    if summary is None:
        events = run_dir / "events.log"
        tail = events.read_text().splitlines()[-5:] if events.exists() else []
        fail("the run did not finish:\n  " + "\n  ".join(tail or ["(no events)"]), code=1)
    from simulations.cli.report import plot_summary

    console.print(summary_table(summary))
    console.print(f"run directory: [bold]{escape(str(run_dir))}[/]", soft_wrap=True)
    console.print(escape(plot_summary(run_dir)), soft_wrap=True)
    if summary.get("diverged"):  # last: the line a user must not miss
        console.print("[bold yellow]warning:[/] training diverged (see events.log)")


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
    server_device(spec)  # the server (and deploy's local nodes) run here: a device it lacks is refused
    check_tracking(spec)  # tracking=tensorboard|mlflow without its extra installed
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
    add_scenario_method_path(str(config.get("scenario", "")))  # a user's module:Class beside it
    if scenario is not None and scenario != config.get("scenario"):
        raise ConfigError(f"{run_dir} is a run of scenario {config.get('scenario')!r}, not "
                          f"{scenario!r}: a run resumes only as itself (omit the scenario)")
    if not isinstance(config.get("run"), dict):
        raise RunDirError(f"{run_dir / 'config.json'} has no resolved run config ('run')")
    spec = parse_run_spec(config["run"])
    server_device(spec)  # resumed on a machine without the run's device: refused, untouched
    check_tracking(spec)
    return spec, str(config.get("scenario", ""))


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
    from simulations.cli.progress import RoundConsole
    from simulations.simulate import client_resources, run_in_process, simulated_nodes

    try:
        if resume is not None:
            spec, scenario = resumable(resume, scenario, set_, seed, out)
            job = Job(spec=None, run_dir=str(resume), resume=True)
        else:
            scenario, spec, run_dir = plan_run(scenario, set_, seed, out)
            job = Job(spec=spec, run_dir=str(run_dir), scenario=scenario)
        resources = client_resources(spec, ray_address)
    except (ConfigError, RunDirError) as exc:
        fail(str(exc))
    # what Ray reserved for each ClientApp (the GPU share may be simulate's own: see
    # client_resources); recorded in config.json's and summary.json's deployment
    job.deployment = {**job.deployment, "client_num_cpus": resources[0], "client_num_gpus": resources[1]}
    total, nodes = spec.federation.num_server_rounds, simulated_nodes(spec)
    clients = (f" playing {spec.federation.num_clients} clients"
               if spec.federation.pool_nodes else "")
    console.print(f"[bold]{escape(scenario)}[/]: {nodes} simulated nodes{clients}, {total} rounds "
                  f"→ {job.run_dir}", soft_wrap=True)
    try:
        with RoundConsole(console, spec) as live:  # fed by the run's metrics stream
            job.sinks.append(live)
            run_in_process(job, nodes, ray_address=ray_address, verbose=verbose, resources=resources)
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
    from simulations.cli.progress import RoundConsole
    from simulations.deploy.scenario import deploy as deploy_scenario

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
        check_pool_transport(spec, "grpc-rere")
    except (ConfigError, RunDirError) as exc:
        fail(str(exc))
    mode = "insecure" if insecure else "TLS + SuperNode authentication"
    console.print(f"[bold]{escape(scenario)}[/]: SuperLink + {nodes} SuperNodes on 127.0.0.1 ({mode}) → {run_dir}",
                  soft_wrap=True)
    try:
        with RoundConsole(console, spec) as live:  # the records the ServerApp writes to metrics.jsonl
            status = deploy_scenario(scenario, spec, overrides, nodes=nodes, run_dir=run_dir,
                                     secure=not insecure, resume=resume is not None,
                                     keep_temp=keep_temp, on_record=live.write)
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
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="this node's own image folder or .npz file"),
    partition: Optional[str] = typer.Option(None, "--partition", help="demo data: partition i/n of the bundled set"),
    teacher: Optional[Path] = typer.Option(None, "--teacher", help="a private teacher checkpoint (FedSA)"),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="where this node keeps private state (LIRF deposits)"),
    port: Optional[int] = typer.Option(None, "--port", help="the node's local Runtime API port (default: a free one)"),
    require_dp: bool = typer.Option(False, "--require-dp", help="refuse any request that would use this node's records without sample-level DP-SGD"),
    min_noise_multiplier: float = typer.Option(0.0, "--min-noise-multiplier", help="refuse DP rounds with a smaller σ (implies --require-dp)"),
    max_epsilon: float = typer.Option(0.0, "--max-epsilon", help="refuse runs whose ε budget is larger, never spend more (implies --require-dp)"),
    allow_audit: bool = typer.Option(False, "--allow-audit", help="with --require-dp: still answer the privacy audit phase (its scores are outside the guarantee)"),
    method_path: List[Path] = typer.Option([], "--method-path", help="a directory holding the module of a run's own method (method = \"module:Class\"); repeatable"),
    device: Optional[str] = typer.Option(None, "--device", help="this node's device: auto, cpu, cuda, cuda:<i>, mps (overrides the run config's `device`)"),
    isolation: str = typer.Option("process", "--isolation", help="process: one long-lived ClientApp worker serves every message; subprocess: Flower's default, a flwr-clientapp process per message"),
) -> None:
    """Start one real client: a SuperNode whose data stay on this host."""
    from simulations.cli.node import NodeArgumentError, NodeOptions, exec_node

    opts = NodeOptions(superlink, root_certificates, auth_key, insecure, data_dir, partition,
                       teacher, state_dir, port, require_dp, min_noise_multiplier, max_epsilon,
                       allow_audit, method_path=tuple(method_path), device=device,
                       isolation=isolation)
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
    sets: Optional[str] = typer.Option(None, "--sets", help="bench lirf / lirf-choose: class sets drawn per seed (default 3 / 0)"),
    grid: Optional[str] = typer.Option(None, "--grid", help="bench lirf-choose: KEY=V1,V2,... the setting to choose (default alpha=0.5,...,0.9)"),
) -> None:
    """Run a benchmark; prints JSON with its figures and a pass flag."""
    from simulations.bench import BENCHES, parse_options, run_bench

    if name not in BENCHES:
        fail(f"unknown benchmark {name!r}; available: {', '.join(sorted(BENCHES)) or '(none)'}")
    try:
        seed_list = parse_seeds(seeds) if seeds else None
        given = {flag: text for flag, text in (("sets", sets), ("grid", grid)) if text is not None}
        options = parse_options(name, given)
    except ConfigError as exc:
        fail(str(exc))
    result = run_bench(name, out, seed_list, options)
    console.print_json(json.dumps(result))
    if not result.get("pass", False):
        raise typer.Exit(1)


def parse_seeds(text: str) -> list[int]:
    """`--seeds 0,1,2` of `bench` and `choose`; ConfigError for anything but integers."""
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds expects comma-separated integers, got {text!r}") from None


@cli.command()
def choose(
    scenario: str = typer.Argument(..., help=SCENARIO_HELP, show_default=False),
    key: str = typer.Option(..., "--key", help="the setting to choose, e.g. ltl.lr; several that move together: a,b"),
    values: str = typer.Option(..., "--values", help="comma-separated candidates, e.g. 0.01,0.05; with several keys: one value per key joined by '/', e.g. constant/0,linear/0.5"),
    metric: str = typer.Option(..., "--metric", help="summary path (or 'A - B') to choose by"),
    goal: str = typer.Option("max", "--goal", help="max | min: whether the metric is better high or low"),
    seeds: str = typer.Option("0,1,2", "--seeds", help="comma-separated seeds"),
    fraction: float = typer.Option(0.1, "--validation-fraction", help="share of the training data held out"),
    set_: List[str] = typer.Option([], "--set", help="key=value for every run (repeatable)"),
    out: Optional[Path] = typer.Option(None, "--out", help="write the JSON result here"),
) -> None:
    """Choose KEY among VALUES on a validation split, then run the choice on test."""
    from simulations.bench import choose as study

    try:
        plan = plan_choice(scenario, key, values, metric, goal, seeds, fraction, set_, out)
        result = study.run(scenario, key, plan["values"], plan["metric"], goal=goal,
                           seeds=plan["seeds"], fraction=fraction, sets=set_, out=out)
    except ConfigError as exc:
        fail(str(exc))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, sort_keys=True))
    shown = {k: v for k, v in result.items() if k != "test"}
    console.print_json(json.dumps({**shown, "test": {s: t.get("metric", t) for s, t in
                                                     result["test"].items()}}))
    if not result["pass"]:
        raise typer.Exit(1)


def plan_choice(scenario: str, key: str, values: str, metric: str, goal: str, seeds: str,
                fraction: float, set_: List[str], out: Optional[Path]) -> dict:
    """Every input of `fedvault choose`, checked before the first run: each candidate's
    config (with the split) resolves and its data preflight passes. ConfigError otherwise."""
    from simulations.bench.choose import GOALS, Metric, choice_keys, setting_items, split_sets
    from simulations.bench.runs import runs_root

    if goal not in GOALS:
        raise ConfigError(f"--goal must be one of {', '.join(GOALS)} (got {goal!r})")
    parsed_metric = Metric.parse(metric)
    reserved = ("seed", "data.validation-fraction", "data.evaluate-on")  # the study sets them
    keys = choice_keys(key)
    overridden = {item.split("=", 1)[0].strip() for item in set_}
    if any(k in reserved for k in (*keys, *overridden)):
        raise ConfigError(f"--key and --set cannot give {', '.join(reserved)}: the study sets "
                          f"them (--seeds, --validation-fraction)")
    if not 0 < fraction < 1:
        raise ConfigError(f"--validation-fraction must be in (0, 1) (got {fraction})")
    seed_list = parse_seeds(seeds)
    if len(set(seed_list)) != len(seed_list) or not all(0 <= s < 2**32 for s in seed_list):
        raise ConfigError(f"--seeds must be distinct integers in [0, 2^32), got {seeds!r}")
    runs = runs_root(out, "choose") if out is not None else None
    if runs is not None and runs.is_dir() and any(runs.iterdir()):
        raise ConfigError(f"{runs} already holds runs (an earlier study with --out {out}): "
                          f"give another --out or remove it")
    candidates = [v.strip() for v in values.split(",") if v.strip()]
    settings = {tuple(setting_items(key, value)) for value in candidates}  # "1/2" == "1 / 2"
    if len(candidates) < 2 or len(settings) != len(candidates):
        raise ConfigError(f"--values needs two or more distinct candidates, got {values!r}")
    if any(not k or "=" in k or k in overridden for k in keys) or len(set(keys)) != len(keys):
        raise ConfigError(f"--key {key!r} must be bare, distinct keys (comma-separated) that "
                          f"no --set also gives")
    for value in candidates:  # the test run differs only in data.evaluate-on, another seed in
        # partition and weights: a seed whose runs fail is marked failed in the JSON
        plan_run(scenario, split_sets(key, value, fraction, "validation", set_), seed_list[0], None)
    return {"values": candidates, "metric": parsed_metric, "seeds": seed_list}


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
def plot(
    run_dir: Path = typer.Argument(..., help="a run directory (fedvault simulate --out)"),
) -> None:
    """Redraw a run's plots (RUN_DIR/plots/*.png) from its files; exit 2 for a bad run dir."""
    from simulations.cli.report import ReportInputError, plot_run_dir

    try:
        written = plot_run_dir(run_dir)
    except ReportInputError as exc:
        fail(str(exc))
    console.print(f"{run_dir / 'plots'}: {', '.join(written) or 'nothing to plot yet (no finished round)'}",
                  soft_wrap=True)


@cli.command()
def report(
    run_dirs: List[Path] = typer.Argument(..., help="one or more run directories"),
    out: Path = typer.Option(..., "--out", help="the HTML file to write (self-contained)"),
) -> None:
    """One HTML page for one or more runs: config differences, curves, summaries, events, audit."""
    from simulations.cli.report import ReportInputError, write_run_report

    try:
        page = write_run_report(run_dirs, out)
    except ReportInputError as exc:
        fail(str(exc))
    console.print(f"report: [bold]{escape(str(page))}[/] ({len(run_dirs)} run{'s' if len(run_dirs) > 1 else ''})",
                  soft_wrap=True)


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

