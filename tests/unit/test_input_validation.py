"""Validation up front (docs/commands.md, "Bad input"): a bad value, range or combination
exits 2 with one line naming the key and its valid range, before Ray or any process starts
and before any file is written; a scenario is a registered name or an explicit .toml path."""

from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from methods.config import ConfigError
from methods.resolve import valid_keys
from server.run_dir import RunDirError
from simulations.cli.app import cli, fail, plan_run

pytestmark = pytest.mark.unit


@pytest.fixture
def no_run(monkeypatch):
    """The CLI in process, with the simulation replaced: a test fails if a run would start."""
    started = []

    def run_in_process(job, nodes, **kwargs):
        started.append(job)
        job.result = {"accuracy": 0.5, "diverged": False}

    monkeypatch.setattr("simulations.simulate.run_in_process", run_in_process)

    def invoke(*args):
        result = CliRunner().invoke(cli, [str(a) for a in args])
        return SimpleNamespace(code=result.exit_code, out=result.output, started=started,
                               exception=result.exception)

    return invoke


def _refused_up_front(proc, out, needle):
    assert proc.code == 2, proc.out
    assert needle in proc.out, proc.out
    assert proc.out.startswith("error: ") and proc.out.count("\n") == 1  # one line, unwrapped
    assert not proc.started and not out.exists()


@pytest.mark.parametrize("item,needle", [
    ("fedavg.lr=nan", "fedavg.lr must be a finite number (got 'nan')"),
    ("round-timeout=inf", "round-timeout must be a finite number (got 'inf')"),
    ("node-wait-timeout=1e400", "node-wait-timeout must be a finite number (got '1e400')"),
    ("dp.max-grad-norm=nan", "dp.max-grad-norm must be a finite number (got 'nan')"),
    ("fraction-train=nan", "fraction-train must be a finite number (got 'nan')"),
    ("audit.significance=-inf", "audit.significance must be a finite number (got '-inf')"),
    ("data.dirichlet-alpha=NaN", "data.dirichlet-alpha must be a finite number (got 'NaN')"),
])
def test_non_finite_floats_exit_2_before_anything_starts(no_run, tmp_path, item, needle):
    out = tmp_path / "out"
    _refused_up_front(no_run("simulate", "fedavg", "--set", item, "--out", out), out, needle)


@pytest.mark.parametrize("items,needle", [
    (["seed=-1"], "seed must be in [0, 4294967295] (got -1)"),
    (["byzantine-nodes=-5"], "byzantine-nodes must be >= 0 (got -5)"),
    (["num-server-rounds=1000000000"], "num-server-rounds must be in [1, 100000] (got 1000000000)"),
    (["round-timeout=-3"], "round-timeout must be in (0, 86400] (got -3.0)"),
    (["fraction-train=0"], "fraction-train must be in (0, 1] (got 0.0)"),
    (["min-nodes=11"], "min-nodes must be in [1, num-clients=10] (got 11)"),
    (["num-clients=5000", "min-nodes=1"], "num-clients must be in [1, 4000] (the 4000 training examples of 'mnist5k'; got 5000)"),
    (["fedavg.batch-size=1000000000"], "fedavg.batch-size must be in [1, 4000] (the 4000 training examples"),
    (["fedavg.batch-size=0"], "fedavg.batch-size must be >= 1 (got 0)"),
    (["fedavg.local-epochs=-1"], "fedavg.local-epochs must be in [0, 1000] (got -1)"),
    (["fedavg.momentum=1.5"], "fedavg.momentum must be in [0, 1) (got 1.5)"),
    (["fedavg.weight-decay=-0.1"], "fedavg.weight-decay must be >= 0 (got -0.1)"),
    (["seed=99999999999999999999999"], "seed must be a 64-bit integer"),
    (["data.partitioner=pathological", "data.classes-per-client=11"], "pathological split into num-clients=10 is impossible"),
    (["secagg.enabled=true", "secagg.reconstruction-threshold=11"],
     "secagg.reconstruction-threshold=11 exceeds the 10 shares of a round with 10 sampled nodes"),
    (["secagg.enabled=true", "secagg.num-shares=5", "secagg.reconstruction-threshold=5"],
     "secagg.reconstruction-threshold=5 must be below secagg.num-shares=5"),
    (["secagg.num-shares=2"], "secagg.num-shares must be 0 (every sampled node) or >= 3"),
    (["secagg.enabled=true", "aggregation=median"], "aggregation=median needs each node's update"),
    (["secagg.enabled=true", "audit.enabled=true"], "audit.enabled reads each node's update"),
    (["secagg.enabled=true", "dp.enabled=true", "dp.level=client"], "dp.level=client clips each update"),
    (["secagg.enabled=true", "fraction-train=0.1"], "SecAgg+ needs at least 2 sampled nodes"),
    (["secagg.modulus-range=3000000000"], "secagg.modulus-range must be"),
    (["secagg.enabled=true", "secagg.num-shares=4"],
     "secagg.num-shares=4 must be odd when below the 10 nodes sampled per round (use 5"),
    (["secagg.enabled=true", "secagg.modulus-range=16777216"],
     "10 sampled nodes × secagg.quantization-range=4194304 exceed secagg.modulus-range=16777216"),
])
def test_out_of_range_values_and_impossible_combinations_exit_2_naming_the_range(no_run, tmp_path, items, needle):
    out = tmp_path / "out"
    args = [a for item in items for a in ("--set", item)]
    _refused_up_front(no_run("simulate", "fedavg", *args, "--out", out), out, needle)


@pytest.mark.parametrize("name", ["../scenarios/fedavg", "server/scenarios/fedavg", "fedavg.json"])
def test_a_scenario_name_is_never_read_as_a_path(no_run, tmp_path, name):
    out = tmp_path / "out"
    _refused_up_front(no_run("simulate", name, "--out", out), out, f"unknown scenario {name!r}")


def test_an_explicit_toml_path_is_a_scenario(no_run, tmp_path):
    scenario = tmp_path / "mine.toml"
    scenario.write_text('method = "fedavg"\nnum-clients = 2\nnum-server-rounds = 1\n'
                        '[data]\ndataset = "digits"\n')
    proc = no_run("simulate", scenario, "--out", tmp_path / "out")
    assert proc.code == 0, proc.out
    job = proc.started[0]
    assert job.scenario == str(scenario) and job.spec.data.dataset == "digits"


@pytest.mark.parametrize("text,needle", [
    ('method = "fedavg"\nnum-clients = \n', "is not valid TOML"),
    ('[fedavg]\nbatch-size = 1e9\n', "fedavg.batch-size must be in [1, 4000]"),
    ('seed = 2024-01-01\n', "seed: cannot read"),
    ('round-timeout = inf\n', "round-timeout must be a finite number"),
])
def test_a_malformed_or_bad_toml_scenario_exits_2_with_one_line(no_run, tmp_path, text, needle):
    scenario = tmp_path / "bad.toml"
    scenario.write_text(text)
    out = tmp_path / "out"
    _refused_up_front(no_run("simulate", scenario, "--out", out), out, needle)
    _refused_up_front(no_run("simulate", tmp_path / "missing.toml", "--out", out), out, "does not exist")


def test_an_error_is_one_unwrapped_line_whatever_the_terminal_width(capsys):
    import typer

    with pytest.raises(typer.Exit):
        fail("x" * 300 + " [1, 2] [bold]not markup[/bold]")
    err = capsys.readouterr().err
    assert err == "error: " + "x" * 300 + " [1, 2] [bold]not markup[/bold]\n"


# --- property: arbitrary --set items end in a run or in exit 2 with one line --------------

KEYS = valid_keys("fedavg")
GOOD = ["digits", "mnist5k", "iid", "dirichlet", "pathological", "fedavg", "krum", "median",
        "trimmed-mean", "true", "false", "1", "2", "0", "-1", "0.5"]
NUMBERS = st.one_of(st.integers(-2**70, 2**70).map(str),
                    st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.sampled_from(["nan", "inf", "-inf", "1e400", "1e9", "1_000", "0x10", " 3 "]))
VALUES = st.one_of(st.text(max_size=30), st.sampled_from(GOOD), NUMBERS)
KEYS_ANY = st.one_of(st.sampled_from(KEYS), st.text(max_size=20))
ITEMS = st.lists(st.one_of(st.tuples(KEYS_ANY, VALUES).map(lambda kv: f"{kv[0]}={kv[1]}"),
                           st.text(max_size=20)), max_size=4)
# Small runs only: the property is about parsing, not about loading big federations.
SMALL = ["--set", "num-clients=2", "--set", "min-nodes=1", "--set", "data.dataset=digits"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=ITEMS, seed=st.one_of(st.none(), st.integers(-2**40, 2**40)))
def test_the_set_parser_ends_in_a_plan_or_a_config_error(tmp_path, items, seed):
    out = tmp_path / "never-written"
    try:
        scenario, spec, run_dir = plan_run("fedavg", ["num-clients=2", "data.dataset=digits", *items],
                                           seed, out)
    except (ConfigError, RunDirError) as exc:
        message = str(exc)
        assert message and "\n" not in message and "Traceback" not in message
    else:
        assert run_dir == out and scenario == "fedavg" and spec.federation.num_clients >= 1
    assert not out.exists()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=ITEMS)
def test_the_cli_ends_in_a_run_or_exit_2_with_one_line_never_a_traceback(no_run, tmp_path, items):
    out = tmp_path / "never-written"
    args = [a for item in items for a in ("--set", item)]
    proc = no_run("simulate", "fedavg", *SMALL, *args, "--out", out)
    assert proc.code in (0, 2), (proc.code, proc.out, proc.exception)
    assert "Traceback" not in proc.out
    if proc.code == 2:
        assert proc.out.startswith("error: ") and proc.out.count("\n") == 1, proc.out
        assert not out.exists()
