"""The run directory: config, per-round metrics, events, summary, checkpoint.

Layout (DESIGN.md): config.json, metrics.jsonl, summary.json, events.log,
checkpoint/. The checkpoint is one file written to a temporary name, fsynced
and renamed over the old one, with a SHA-256 of its payload inside, so a crash
at any instant leaves either the previous or the new checkpoint, never half of
one, and a corrupted file is refused instead of half-loaded.

Resume is exact or refused: every checkpoint carries the SHA-256 of the run's resolved
config (config.json's scenario and run sections), so a config edited after the run
started, or a checkpoint copied from another run, is refused; so is a finished run.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from pathlib import Path
from typing import Any, Mapping, Protocol

import numpy as np

CHECKPOINT_FILE = "latest.npz"
_STATE_KEY = "__state_json__"
# In the checkpoint's state: which config it belongs to (stripped again on load).
_RUN_CONFIG_KEY = "__run_config__"
# Append-only JSONL files a crash can leave with a half-written last line.
JSONL_FILES = ("metrics.jsonl", "ledger.jsonl")


class RunDirError(ValueError):
    """The run directory cannot be used (exists, missing, or corrupt checkpoint)."""


class MetricsSink(Protocol):
    """Where each metrics record goes after metrics.jsonl: the console, a tracker."""

    def write(self, record: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class RunDirectory:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._config_id: dict[str, str] | None = None  # read once: see config_id
        self.sinks: list[MetricsSink] = []  # the metrics stream's readers besides metrics.jsonl

    # --- creation -------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, config: Mapping[str, Any]) -> "RunDirectory":
        """A fresh run directory; refuses to overwrite an earlier run's files."""
        path = cls.check_free(path)
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        atomic_write(path / "config.json", json.dumps(dict(config), indent=2, sort_keys=True).encode())
        (path / "events.log").touch()  # always there: empty means nothing happened
        return run

    @staticmethod
    def check_free(path: str | Path) -> Path:
        """Refuse a directory that already holds a run (nothing is written)."""
        path = Path(path)
        if (path / "config.json").exists() or (path / "metrics.jsonl").exists():
            raise RunDirError(
                f"{path} already holds a run; choose another --out or continue it with --resume {path}"
            )
        return path

    @classmethod
    def open_existing(cls, path: str | Path) -> "RunDirectory":
        run = cls(path)
        if not (run.path / "config.json").is_file():
            raise RunDirError(f"{path} is not a fedvault run directory (no config.json)")
        return run

    def config(self) -> dict[str, Any]:
        try:
            config = json.loads((self.path / "config.json").read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RunDirError(f"{self.path / 'config.json'} is unreadable or not valid JSON: {exc}") from exc
        if not isinstance(config, dict):
            raise RunDirError(f"{self.path / 'config.json'} must hold a JSON object")
        return config

    def config_id(self) -> dict[str, str]:
        """The SHA-256 of the resolved run config (plus its scenario and data set, to say
        what a mismatch is about). Read once per run: a config edited while the run is
        going does not slip into its later checkpoints."""
        if self._config_id is None:
            config = self.config()
            run = config.get("run") if isinstance(config.get("run"), dict) else {}
            text = json.dumps({"scenario": config.get("scenario", ""), "run": run}, sort_keys=True)
            self._config_id = {"sha256": hashlib.sha256(text.encode()).hexdigest(),
                               "scenario": str(config.get("scenario", "")),
                               "dataset": str(run.get("data.dataset", ""))}
        return self._config_id

    @property
    def finished(self) -> bool:
        return (self.path / "summary.json").is_file()

    @classmethod
    def open_for_resume(cls, path: str | Path) -> tuple["RunDirectory", dict[str, np.ndarray], dict[str, Any]]:
        """The run, its checkpointed arrays and state; refuses (RunDirError, nothing changed)
        a corrupt checkpoint, one written for another config, and a finished run."""
        run = cls.open_existing(path)
        arrays, state = run.load_checkpoint()
        if run.finished:
            raise RunDirError(f"{run.path} is a finished run (summary.json exists): nothing to "
                              "resume; start a new run with --out")
        return run, arrays, state

    def drop_unterminated_lines(self) -> None:
        """On resume: a JSONL file whose last line has no newline was cut by a crash in a
        round that was never checkpointed; drop that line (and say so) so the file parses."""
        for name in JSONL_FILES:
            path = self.path / name
            data = path.read_bytes() if path.is_file() else b""
            if not data or data.endswith(b"\n"):
                continue
            keep = data.rfind(b"\n") + 1
            atomic_write(path, data[:keep])
            self.log_event(f"resume: dropped the unterminated last line of {name} (a record of a "
                           f"round that was never checkpointed): {data[keep:keep + 80]!r}")

    # --- append-only records ---------------------------------------------------
    def log_metrics(self, record: Mapping[str, Any]) -> None:
        """The one metrics stream: metrics.jsonl first (the record of truth), then each sink.
        A sink that fails is dropped with one line in events.log: a tracker or a console
        cannot cost a run."""
        with open(self.path / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(dict(record), sort_keys=True) + "\n")
        for sink in list(self.sinks):
            try:
                sink.write(record)
            except Exception as exc:  # noqa: BLE001 - see the docstring
                self.sinks.remove(sink)
                self.log_event(f"metrics sink {type(sink).__name__} dropped: {type(exc).__name__}: {exc}")

    def close_sinks(self) -> None:
        sinks, self.sinks = self.sinks, []
        for sink in sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - the run's files are already written
                self.log_event(f"metrics sink {type(sink).__name__} did not close: {type(exc).__name__}: {exc}")

    def log_event(self, text: str) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        text = " | ".join(line for line in text.splitlines() if line.strip())  # one event, one line
        with open(self.path / "events.log", "a") as fh:
            fh.write(f"{stamp} {text}\n")

    def metrics(self) -> list[dict[str, Any]]:
        path = self.path / "metrics.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        text = json.dumps(dict(summary), indent=2, sort_keys=True)
        atomic_write(self.path / "summary.json", text.encode())

    def truncate_metrics_after(self, last_round: int) -> None:
        """On resume, drop records of rounds the checkpoint does not contain."""
        self.drop_unterminated_lines()
        kept = [m for m in self.metrics() if int(m.get("round", 0)) <= last_round]
        body = "".join(json.dumps(m, sort_keys=True) + "\n" for m in kept)
        atomic_write(self.path / "metrics.jsonl", body.encode())

    # --- checkpoint -------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint" / CHECKPOINT_FILE

    def save_checkpoint(self, arrays: Mapping[str, np.ndarray], state: Mapping[str, Any]) -> None:
        _save_checked(self.checkpoint_path, arrays, {**state, _RUN_CONFIG_KEY: self.config_id()})

    def load_checkpoint(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The checkpoint's arrays and state, refused unless it belongs to this config.json."""
        if not self.checkpoint_path.is_file():
            raise RunDirError(f"{self.path} has no checkpoint ({self.checkpoint_path} is missing): "
                              "nothing to resume")
        arrays, state = _load_checked(self.checkpoint_path)
        written_for = state.pop(_RUN_CONFIG_KEY, None)
        if not isinstance(written_for, dict) or "sha256" not in written_for:
            raise RunDirError(f"checkpoint {self.checkpoint_path} does not record the config it was "
                              "written for: refusing to resume it")
        now = self.config_id()
        if written_for["sha256"] != now["sha256"]:
            then = (written_for.get("scenario"), written_for.get("dataset"))
            if then != (now["scenario"], now["dataset"]):
                raise RunDirError(
                    f"checkpoint {self.checkpoint_path} belongs to a run of scenario {then[0]!r} on "
                    f"data set {then[1]!r}, but {self.path / 'config.json'} is a run of scenario "
                    f"{now['scenario']!r} on data set {now['dataset']!r}: refusing to resume")
            raise RunDirError(
                f"{self.path / 'config.json'} was edited after its checkpoint was written (the "
                "config's SHA-256 differs): a run resumes only under the config it started with")
        return arrays, state

    # --- finished stages of multi-stage methods (server/stages.py) ---------------
    def stage_path(self, name: str) -> Path:
        return self.path / "checkpoint" / f"stage-{name}.npz"

    def save_stage(self, name: str, arrays: Mapping[str, np.ndarray]) -> None:
        """A finished stage's final arrays: atomic and checksummed like the checkpoint."""
        _save_checked(self.stage_path(name), arrays, {"stage": name})

    def load_stage(self, name: str) -> dict[str, np.ndarray]:
        path = self.stage_path(name)
        if not path.is_file():
            raise RunDirError(f"{path} is missing: stage {name!r} cannot be resumed from")
        return _load_checked(path)[0]


def _save_checked(path: Path, arrays: Mapping[str, np.ndarray], state: Mapping[str, Any]) -> None:
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    state_json = json.dumps(dict(state), sort_keys=True)
    digest = _digest(payload, state_json)
    buffer = io.BytesIO()
    np.savez(buffer, **payload, **{_STATE_KEY: np.frombuffer(
        json.dumps({"state": state_json, "sha256": digest}).encode(), dtype=np.uint8)})
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buffer.getvalue())


def _load_checked(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k != _STATE_KEY}
            meta = json.loads(bytes(data[_STATE_KEY]).decode())
    except Exception as exc:  # zip/npy/json errors all mean the same thing here
        raise RunDirError(f"checkpoint {path} is unreadable or truncated: {exc}") from exc
    if _digest(arrays, meta["state"]) != meta["sha256"]:
        raise RunDirError(f"checkpoint {path} fails its SHA-256 check: refusing to load it")
    return arrays, json.loads(meta["state"])


def default_run_dir(scenario: str, seed: int) -> Path:
    """Where a run goes when no --out / run-dir is given (one naming for every entry point)."""
    return Path("runs") / f"{scenario}-s{seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def _digest(arrays: Mapping[str, np.ndarray], state_json: str) -> str:
    h = hashlib.sha256(state_json.encode())
    for key in sorted(arrays):
        value = np.ascontiguousarray(arrays[key])
        h.update(key.encode() + str(value.dtype).encode() + str(value.shape).encode())
        h.update(value.tobytes())
    return h.hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all (a temp file, fsync, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
