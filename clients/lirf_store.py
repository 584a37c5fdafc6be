"""The LIRF owner's store: its deposit modules T_r, sparse, each with its signing key.

A module is kept in slot "pending" (trained, not yet on a receipt the server has
checkpointed) or "committed" (server/lirf.py's two-phase commit), packed sparse
(methods/lirf/sparse.py: nonzero values and their positions) and with the Ed25519
private key that proves possession at withdrawal (methods/lirf/possession.py). The key
never leaves this store; files are written atomically and readable by the node's user
only (mode 0600): T_r holds the deposited knowledge, the key the right to withdraw it.

Two backends behind the same calls: a directory (node config `state-dir`, or
`lirf.node-state-dir` for simulated nodes), surviving a restart; or Flower's per-node
`context.state` (the run's lifetime).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, RecordDict

from clients.tasks import node_key
from methods.base import RunSpec
from methods.lirf.sparse import pack, unpack
from methods.lirf.withdraw import module_sha256
from protos.records import from_array_record, to_array_record

STATE_DIR = "state-dir"  # node config key
_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_KEY = "private-key"


class ModuleStore:
    """Deposit modules and their signing keys by id, in slot "pending" or "committed"."""

    def __init__(self, state: RecordDict, directory: Path | None) -> None:
        self.state = state
        self.directory = directory

    def put_pending(self, deposit_id: str, arrays: Mapping[str, np.ndarray],
                    private_key: bytes) -> str:
        """Keep a freshly trained module and its key (replacing an uncommitted pair);
        returns the module's hash."""
        self._write_key("pending", deposit_id, private_key)
        self._write("pending", deposit_id, arrays)
        return module_sha256(arrays)

    def commit(self, deposit_id: str, sha256: str) -> None:
        """pending → committed, only for the module the receipt names (idempotent)."""
        current = self._read("committed", deposit_id)
        if (current is not None and module_sha256(current) == sha256
                and self._read_key("committed", deposit_id) is not None):
            self._delete("pending", deposit_id)  # left by a commit cut short, if any
            return  # a repeated commit after a server restart
        pending = self._read("pending", deposit_id)
        key = self._read_key("pending", deposit_id)
        if pending is None or key is None or module_sha256(pending) != sha256:
            raise ValueError(f"no pending deposit module {deposit_id!r} matches the receipt")
        self._write_key("committed", deposit_id, key)  # the key first: a module is never
        self._write("committed", deposit_id, pending)  # committed without its key
        self._delete("pending", deposit_id)

    def committed(self, deposit_id: str) -> dict[str, np.ndarray]:
        arrays = self._read("committed", deposit_id)
        if arrays is None:
            raise KeyError(f"this node holds no committed deposit module {deposit_id!r}")
        return arrays

    def signing_key(self, deposit_id: str) -> bytes | None:
        """The committed module's private key (None: this node cannot prove possession)."""
        return self._read_key("committed", deposit_id)

    def release(self, deposit_id: str) -> None:
        """Forget the module and its key once its knowledge is back in the global model."""
        self._delete("committed", deposit_id)

    def read(self, slot: str, deposit_id: str) -> dict[str, np.ndarray] | None:
        return self._read(slot, deposit_id)

    def slot(self, deposit_id: str) -> str | None:
        for slot in ("committed", "pending"):
            if self._read(slot, deposit_id) is not None:
                return slot
        return None

    def path(self, slot: str, deposit_id: str, suffix: str = "npz") -> Path:
        assert self.directory is not None
        return self.directory / f"{self._checked(deposit_id)}.{slot}.{suffix}"

    # --- the two backends -------------------------------------------------------------
    @staticmethod
    def _checked(deposit_id: str) -> str:
        if not _SAFE_ID.fullmatch(deposit_id):
            raise ValueError(f"invalid deposit id {deposit_id!r}")
        return deposit_id

    def _state_key(self, slot: str, deposit_id: str, what: str = "module") -> str:
        return f"lirf-{slot}-{what}:{self._checked(deposit_id)}"

    def _write(self, slot: str, deposit_id: str, arrays: Mapping[str, np.ndarray]) -> None:
        packed = pack(arrays)  # stored as it is sent: nonzeros and their positions
        if self.directory is None:
            self.state[self._state_key(slot, deposit_id)] = to_array_record(packed)
            return
        buffer = io.BytesIO()
        np.savez(buffer, **packed)
        _write_private(self.path(slot, deposit_id), buffer.getvalue())

    def _read(self, slot: str, deposit_id: str) -> dict[str, np.ndarray] | None:
        if self.directory is None:
            record = self.state.get(self._state_key(slot, deposit_id))
            return unpack(from_array_record(record)) if isinstance(record, ArrayRecord) else None
        path = self.path(slot, deposit_id)
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            return unpack({k: data[k] for k in data.files})

    def _write_key(self, slot: str, deposit_id: str, private_key: bytes) -> None:
        if self.directory is None:
            self.state[self._state_key(slot, deposit_id, "key")] = ConfigRecord(
                {_KEY: bytes(private_key)})
        else:
            _write_private(self.path(slot, deposit_id, "key"), bytes(private_key))

    def _read_key(self, slot: str, deposit_id: str) -> bytes | None:
        if self.directory is None:
            record = self.state.get(self._state_key(slot, deposit_id, "key"))
            return bytes(record[_KEY]) if isinstance(record, ConfigRecord) else None
        path = self.path(slot, deposit_id, "key")
        return path.read_bytes() if path.is_file() else None

    def _delete(self, slot: str, deposit_id: str) -> None:
        if self.directory is None:
            for what in ("module", "key"):
                self.state.pop(self._state_key(slot, deposit_id, what), None)
            return
        self.path(slot, deposit_id).unlink(missing_ok=True)
        self.path(slot, deposit_id, "key").unlink(missing_ok=True)


def _write_private(path: Path, data: bytes) -> None:
    """Atomic (a crash leaves the old file or the new one, never half) and mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # an existing tmp file keeps its mode through O_CREAT
        with os.fdopen(fd, "wb") as fh:
            fd = -1
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        if fd >= 0:
            os.close(fd)
    os.replace(tmp, path)


def module_store(spec: RunSpec, context: Context) -> ModuleStore:
    root = context.node_config.get(STATE_DIR)
    if root:
        return ModuleStore(context.state, Path(str(root)) / "lirf")
    if spec.method.node_state_dir:
        where = Path(spec.method.node_state_dir) / node_key(context.node_config)
        return ModuleStore(context.state, where)
    return ModuleStore(context.state, None)
