"""Claims about a user's own method: `module:Class` from the scenario's directory, an
installed package's `fedvault.methods` entry point, and each mistake in the user's code
refused before anything starts with one line that names the user's file."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import methods.registry as registry
import methods.user_method as user_method
from methods.config import ConfigError
from methods.resolve import parse_run_spec, run_spec_from_json
from methods.user_method import METHOD_PATH_ENV
from server.scenario import resolve
from simulations.cli.app import cli
from simulations.cli.preflight import check_runnable

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]

# A user's method on the bundled digits (1×8×8, 10 classes); the {placeholders} are what
# the error cases below get wrong.
GOOD = {"inputs": "64", "classes": "10", "loss": "nn.functional.cross_entropy(model(x), y)",
        "frozen": "frozen=True", "base": "LocalTrainingConfig", "name": '"tiny"',
        "step": "train_step", "extra": ""}
SOURCE = """\
from dataclasses import dataclass

from torch import nn

from methods import LocalTrainingConfig, Method


@dataclass({frozen})
class TinyConfig({base}):
    hidden: int = 16

    def validate(self):
        super().validate()
        if self.hidden < 1:
            raise ValueError("tiny.hidden must be >= 1")


class Tiny(Method):
    name = {name}
    config_cls = TinyConfig

    def build_model(self, spec):
        return nn.Sequential(nn.Flatten(), nn.Linear({inputs}, spec.method.hidden), nn.ReLU(),
                             nn.Linear(spec.method.hidden, {classes}))

    def {step}(self, model, batch, spec):
        x, y = batch
        return {loss}
{extra}"""
EXTRA_LINE = SOURCE.split("{extra}")[0].count("\n") + 1  # where `extra` lands
LOSS_LINE = SOURCE.split("return {loss}")[0].count("\n") + 1  # train_step's model(x)
SCENARIO = """\
method = "{reference}"
num-clients = 2

[data]
dataset = "digits"
"""


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """A directory for the user's files; the registry, sys.path, sys.modules and the
    method path are as before afterwards."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_USER", {})
    monkeypatch.setattr(user_method, "_added", [])
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv(METHOD_PATH_ENV, raising=False)
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", "") or "").startswith(str(tmp_path)):
            del sys.modules[name]


def write_method(directory: Path, module: str = "mymeth", **changes: str) -> Path:
    path = directory / f"{module}.py"
    path.write_text(SOURCE.format(**{**GOOD, **changes}))
    importlib.invalidate_caches()
    return path


def write_scenario(directory: Path, reference: str = "mymeth:Tiny") -> Path:
    path = directory / "scenario.toml"
    path.write_text(SCENARIO.format(reference=reference))
    return path


def test_module_class_resolves_from_the_scenario_directory_and_keeps_its_section(user_dir):
    write_method(user_dir)
    scenario = write_scenario(user_dir)
    spec = resolve(str(scenario), {"tiny.hidden": "5"})
    assert spec.method_name == "mymeth:Tiny" and spec.section == "tiny"
    assert spec.method.hidden == 5 and type(spec.method).__name__ == "TinyConfig"
    flat = spec.to_flat()
    assert flat["method"] == "mymeth:Tiny" and flat["tiny.hidden"] == 5
    assert run_spec_from_json(spec.to_json()) == spec  # what every RoundHeader carries
    method = registry.get_method("mymeth:Tiny")
    assert registry.get_method("tiny") is method and not registry.is_builtin("mymeth:Tiny")
    check_runnable(spec)  # the trial step on 2 digits passes


def test_a_relative_data_root_in_a_scenario_file_is_relative_to_the_file(user_dir):
    write_method(user_dir)
    scenario = write_scenario(user_dir)
    scenario.write_text(scenario.read_text() + 'root = "images"\n')
    assert resolve(str(scenario)).data.root == str(user_dir / "images")
    assert resolve(str(scenario), {"data.root": "elsewhere"}).data.root == "elsewhere"


def test_a_fresh_process_finds_the_module_through_the_method_path(user_dir):
    """What a Ray worker and a SuperNode's flwr-clientapp do: a new interpreter, another
    working directory, only the environment inherited."""
    write_method(user_dir)
    env = {**os.environ, METHOD_PATH_ENV: str(user_dir), "PYTHONPATH": str(REPO)}
    code = "from methods.registry import get_method; print(get_method('mymeth:Tiny').name)"
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd="/", capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "tiny"


def _raises_naming(match: str, call) -> str:
    with pytest.raises(ConfigError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message and match in message, message
    return message


@pytest.mark.parametrize("changes,needle", [
    ({"extra": "raise RuntimeError('boom at import')\n"}, "RuntimeError: boom at import ({file}:{extra})"),
    ({"extra": "def broken(:\n"}, "({file}:{extra})"),
    ({"extra": "import not_installed_anywhere\n"},
     "ModuleNotFoundError: No module named 'not_installed_anywhere' ({file}:{extra})"),
    ({"frozen": ""}, "TypeError: cannot inherit non-frozen dataclass from a frozen one ({file}:"),
    ({"frozen": "", "base": "object"}, "({file}): Tiny.config_cls must be a frozen dataclass deriving"),
    ({"base": "object"}, "({file}): Tiny.config_cls must be a frozen dataclass deriving"),
    ({"name": '"my.name"'}, "({file}): Tiny.name names its config section"),
    ({"name": '"data"'}, "({file}): Tiny.name names its config section"),
    ({"name": '"fedavg"'}, "({file}): its name 'fedavg' is taken by methods.fedavg.method"),
    ({"step": "train_stepp"}, "({file}): Tiny() failed: TypeError: Can't instantiate abstract class Tiny"),
])
def test_a_mistake_in_the_users_class_is_a_config_error_naming_the_file(user_dir, changes, needle):
    path = write_method(user_dir, **changes)
    user_method.add_method_path(user_dir)
    message = _raises_naming(needle.format(file=path, extra=EXTRA_LINE),
                             lambda: registry.get_method("mymeth:Tiny"))
    assert message.startswith("method 'mymeth:Tiny'")


def test_a_missing_module_or_class_says_where_it_was_looked_for(user_dir):
    path = write_method(user_dir)
    user_method.add_method_path(user_dir)
    message = _raises_naming("no module 'nomodule' in ", lambda: registry.get_method("nomodule:Tiny"))
    assert str(user_dir) in message
    _raises_naming(f"{path} has no 'Tiny2' (its Method classes: Tiny)",
                   lambda: registry.get_method("mymeth:Tiny2"))
    _raises_naming("is not a class deriving from methods.Method",
                   lambda: registry.get_method("mymeth:dataclass"))
    _raises_naming("named module:Class", lambda: registry.get_method("my-meth:Tiny"))


def test_a_value_the_users_validate_refuses_is_a_config_error_naming_the_file(user_dir):
    path = write_method(user_dir)
    user_method.add_method_path(user_dir)
    _raises_naming(f"tiny.hidden must be >= 1 ({path})",
                   lambda: parse_run_spec({"method": "mymeth:Tiny", "tiny.hidden": 0}))


@pytest.mark.parametrize("changes,needle", [
    ({"inputs": "50"}, "fails on 2 examples of 'digits' (x (2, 1, 8, 8), 10 classes): RuntimeError: "
                       "mat1 and mat2 shapes cannot be multiplied (2x64 and 50x16) ({file}:{loss})"),
    ({"loss": "nn.functional.cross_entropy(model(x), y).item()"}, "scalar tensor"),
    ({"loss": "nn.functional.cross_entropy(model(x), y, reduction='none')"}, "got a tensor of shape (2,)"),
    ({"loss": "nn.functional.cross_entropy(model(x), y).detach()"}, "without a gradient"),
    ({"classes": "12"}, "the default evaluate needs (2, 10) logits"),
])
def test_a_model_or_step_that_does_not_fit_the_data_is_refused_before_the_run(user_dir, changes, needle):
    path = write_method(user_dir, **changes)
    spec = resolve(str(write_scenario(user_dir)))
    message = _raises_naming(needle.format(file=path, loss=LOSS_LINE), lambda: check_runnable(spec))
    assert message.startswith(f"method 'mymeth:Tiny' ({path})")


def test_the_cli_exits_2_with_one_line_naming_the_users_file(user_dir):
    path = write_method(user_dir, inputs="50")
    out = user_dir / "run"
    result = CliRunner().invoke(cli, ["simulate", str(write_scenario(user_dir)), "--out", str(out)])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and str(path) in lines[0] and "fails on 2 examples" in lines[0]
    assert not out.exists()


# ---- entry points: an installed package declares its method -----------------------------


def install_fake_distribution(site: Path, entry_points: str) -> None:
    """What `pip install` leaves: a package and its dist-info (METADATA, entry_points.txt),
    on a sys.path entry, where importlib.metadata looks."""
    (site / "fvx_demo").mkdir(parents=True)
    (site / "fvx_demo" / "__init__.py").write_text("")
    (site / "fvx_demo" / "method.py").write_text(SOURCE.format(**{**GOOD, "name": '"fvx-tiny"'}))
    info = site / "fvx_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fvx-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[fedvault.methods]\n{entry_points}\n")
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()


def test_an_installed_entry_point_is_loaded_by_name_only_when_a_run_names_it(user_dir):
    install_fake_distribution(user_dir / "site", "fvx-tiny = fvx_demo.method:Tiny")
    assert "fvx-tiny" not in registry.method_names() and "fvx_demo.method" not in sys.modules
    assert "installed (fedvault.methods): fvx-tiny" in _raises_naming(
        "unknown method 'nope'", lambda: registry.get_method("nope"))
    spec = parse_run_spec({"method": "fvx-tiny", "num-clients": 2, "data.dataset": "digits",
                           "fvx-tiny.hidden": 8})
    assert spec.method_name == spec.section == "fvx-tiny" and spec.method.hidden == 8
    assert run_spec_from_json(spec.to_json()) == spec
    assert type(registry.get_method("fvx-tiny")).__module__ == "fvx_demo.method"
    check_runnable(spec)


def test_an_entry_point_whose_class_has_another_name_is_refused(user_dir):
    install_fake_distribution(user_dir / "site", "other-name = fvx_demo.method:Tiny")
    _raises_naming("the entry point's name and the class's name 'fvx-tiny' differ",
                   lambda: registry.get_method("other-name"))


# ---- how the module reaches each process -------------------------------------------------


def test_node_method_path_reaches_the_clientapps_environment(user_dir):
    from simulations.cli.node import NodeArgumentError, NodeOptions, method_path_value

    opts = NodeOptions("127.0.0.1:9092", insecure=True, partition="0/1", method_path=(user_dir,))
    assert method_path_value(opts).split(os.pathsep)[0] == str(user_dir.resolve())
    with pytest.raises(NodeArgumentError, match="--method-path .* is not a directory"):
        method_path_value(NodeOptions("127.0.0.1:9092", method_path=(user_dir / "missing",)))


def test_deploy_and_simulate_pass_the_scenarios_directory_on(user_dir, monkeypatch):
    from simulations.deploy.scenario import node_method_path_flags
    from simulations.simulate import simulation_env

    scenario = write_scenario(user_dir)
    assert node_method_path_flags(str(scenario)) == ["--method-path", str(user_dir.resolve())]
    assert node_method_path_flags("fedavg") == []
    monkeypatch.setattr(os, "environ", dict(os.environ))
    user_method.add_method_path(user_dir)
    simulation_env()  # before Ray starts: its workers inherit the environment
    assert os.environ[METHOD_PATH_ENV].split(os.pathsep)[0] == str(user_dir.resolve())


def test_the_example_is_a_complete_users_method():
    """examples/own_method imports only the public API (its run: tests/integration)."""
    source = (REPO / "examples" / "own_method" / "mymethod.py").read_text()
    fedvault_imports = [line for line in source.splitlines()
                        if line.startswith(("from methods", "import methods", "from server",
                                            "from clients", "from simulations"))]
    assert fedvault_imports == ["from methods import LocalTrainingConfig, Method, RunSpec"]


def test_a_node_imports_a_servers_module_class_only_from_its_method_path(user_dir, monkeypatch):
    # The run config comes from the server: on a node (`fedvault node` sets PATH_ONLY_ENV),
    # a module outside --method-path is refused before it is imported (importing runs code).
    planted = user_dir / "elsewhere"
    planted.mkdir()
    (planted / "sideeffect.py").write_text("raise SystemExit('imported')\n")
    monkeypatch.syspath_prepend(str(planted))
    allowed = user_dir / "allowed"
    allowed.mkdir()
    write_method(allowed)
    monkeypatch.setenv(user_method.PATH_ONLY_ENV, "1")
    monkeypatch.setenv(METHOD_PATH_ENV, str(allowed))
    with pytest.raises(ConfigError, match="user code only from its --method-path .*'sideeffect' is not there"):
        user_method.load_reference("sideeffect:Anything")
    with pytest.raises(ConfigError, match="'json' is not there"):
        user_method.load_reference("json:JSONDecoder")
    assert "sideeffect" not in sys.modules
    assert user_method.load_reference("mymeth:Tiny").name == "tiny"


def test_a_node_imports_a_model_builder_only_from_its_method_path(user_dir, monkeypatch):
    from methods.common.modules import import_builder

    (user_dir / "sideeffect2.py").write_text("raise SystemExit('imported')\n")
    monkeypatch.syspath_prepend(str(user_dir))
    monkeypatch.setenv(user_method.PATH_ONLY_ENV, "1")
    monkeypatch.setenv(METHOD_PATH_ENV, str(user_dir / "nowhere"))
    with pytest.raises(ConfigError, match="fedsa.teacher-arch = 'sideeffect2:build'.*not there"):
        import_builder("sideeffect2:build", key="fedsa.teacher-arch")
    assert "sideeffect2" not in sys.modules
