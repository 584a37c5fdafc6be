"""The command blocks of docs/multihost.md, as data: what the multi-host test runs.

A block's info string says where and how it runs:

    ```bash host=superlink              once, on the SuperLink host, must succeed
    ```bash host=superlink service      started and kept running (the SuperLink)
    ```bash host=superlink each-node    once per client host, with NODE set
    ```bash host=node [service]         on every client host
    ```bash host=stranger [refused]     on the uninvited host; `refused` blocks must fail
    ```text copy                        file transfers, `FROM:PATH -> TO:PATH` per line

Blocks with any other info string (```toml, plain ```bash) are illustration only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "multihost.md"
HOSTS = ("superlink", "node", "stranger")
FLAGS = ("service", "each-node", "refused")
_FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_COPY = re.compile(r"^(\w+):(\S+)\s*->\s*(\w+):(\S+)$")


@dataclass(frozen=True)
class Block:
    host: str
    flags: frozenset[str]
    text: str  # the commands, exactly as on the page
    line: int  # where the block starts in the guide, for messages

    @property
    def service(self) -> bool:
        return "service" in self.flags


@dataclass(frozen=True)
class Copy:
    src_host: str
    src: str
    dst_host: str
    dst: str


Step = Block | Copy


def steps(text: str | None = None) -> list[Step]:
    """The guide's runnable blocks and copies, in page order; ValueError for a malformed one."""
    text = GUIDE.read_text() if text is None else text
    found: list[Step] = []
    for match in _FENCE.finditer(text):
        info, body = match.group(1).split(), match.group(2)
        line = text.count("\n", 0, match.start()) + 1
        if info[:2] == ["text", "copy"]:
            found += [_copy(entry, line) for entry in body.splitlines() if entry.strip()]
            continue
        attrs = [a for a in info[1:] if a.startswith("host=")]
        if not info or info[0] != "bash" or not attrs:
            continue
        host, flags = attrs[0].removeprefix("host="), frozenset(info[1:]) - set(attrs)
        if host not in HOSTS or not flags <= set(FLAGS):
            raise ValueError(f"docs/multihost.md:{line}: unknown block attributes {info[1:]}")
        found.append(Block(host, flags, body, line))
    return found


def _copy(entry: str, line: int) -> Copy:
    match = _COPY.match(entry.strip())
    if match is None or match.group(1) not in HOSTS or match.group(3) not in HOSTS:
        raise ValueError(f"docs/multihost.md:{line}: a copy line is HOST:PATH -> HOST:PATH, "
                         f"got {entry!r}")
    return Copy(*match.groups())
