"""The processes a harness component runs: started, watched, stopped, and remembered across processes.

Both the control plane (`cluster.py`) and the real node (`node.py`) run their parts as plain
processes that outlive the Python process that started them (`make cluster-up` returns, a later
`make cluster-down` stops them). So each keeps a record, a dataclass persisted as JSON, with the
pid *and* the exact command line of every process: a pid whose command line differs was reused by an
unrelated process and is never signalled. `ProcessGroup` is that bookkeeping, written once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from tests.harness import wait_for


class ProcessRecord(Protocol):
    """What a persisted record needs: per name, the pid and the command line it was started with."""

    pids: dict[str, int]
    argv: dict[str, list[str]]


RecordT = TypeVar("RecordT", bound=ProcessRecord)


def process_matches(pid: int, argv: list[str]) -> bool:
    """True while `pid` runs exactly `argv` (false for zombies, dead and reused pids)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return raw.split(b"\0")[:-1] == [arg.encode() for arg in argv]


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class ProcessGroup(Generic[RecordT]):
    """Named processes, each in its own session and logging to `<log_dir>/<name>.log`.

    `record` is the component's persisted state (None while not started); every change to its pids is
    written to `record_path` at once, so another process can stop what this one started.
    `unavailable` is the exception a failed start raises, with the tail of the process's log.
    """

    def __init__(self, record_path: Path, log_dir: Path, cwd: Path, unavailable: type[Exception],
                 env: Mapping[str, str] | None = None, poll_interval: float = 0.1) -> None:
        self.record_path = record_path
        self.log_dir = log_dir
        self.cwd = cwd
        self.unavailable = unavailable
        self.env = env
        self.poll_interval = poll_interval
        self.record: RecordT | None = None
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def load(self, record_type: Callable[..., RecordT]) -> RecordT | None:
        """The record a running (or crashed) component left in `record_path`, if any."""
        if self.record_path.exists():
            self.record = record_type(**json.loads(self.record_path.read_text()))
        return self.record

    def save(self) -> None:
        assert self.record is not None
        self.record_path.write_text(json.dumps(asdict(self.record), indent=2) + "\n")  # type: ignore[call-overload]

    def forget(self) -> None:
        """Drop the record, on disk too (after the processes are stopped)."""
        self.record_path.unlink(missing_ok=True)
        self.record = None

    def status(self) -> dict[str, bool]:
        """Process name -> whether it is alive ({} when not started)."""
        return {name: self.alive(name) for name in self.record.pids} if self.record else {}

    def spawn(self, name: str, argv: list[str]) -> None:
        assert self.record is not None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env: dict[str, Any] | None = {**os.environ, **self.env} if self.env is not None else None
        with (self.log_dir / f"{name}.log").open("ab") as log:
            self._children[name] = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd, env=env,
                start_new_session=True,  # survives the `up` CLI exiting and its Ctrl-C
            )
        self.record.pids[name] = self._children[name].pid
        self.record.argv[name] = argv
        self.save()

    def alive(self, name: str) -> bool:
        if self.record is None or name not in self.record.pids:
            return False
        if child := self._children.get(name):
            # Our own child: ask it directly. Its /proc cmdline can read empty for a moment after Popen
            # returns (vfork), which looked like a dead process.
            return child.poll() is None
        return process_matches(self.record.pids[name], self.record.argv[name])

    def wait(self, name: str, ready: Callable[[], object], timeout: float) -> None:
        """Wait for `ready`, failing fast with the log tail if the process exits."""
        log = self.log_dir / f"{name}.log"

        def check() -> object:
            if not self.alive(name):
                raise self.unavailable(f"{name} exited during start; end of {log}:\n{log_tail(log)}")
            return ready()

        try:
            wait_for(check, timeout, f"{name} not ready", interval=self.poll_interval)
        except TimeoutError as exc:
            raise self.unavailable(f"{exc}; end of {log}:\n{log_tail(log)}") from None

    def terminate(self, names: list[str], timeout: float) -> None:
        """SIGTERM, then SIGKILL after `timeout`, the named processes if still ours."""
        record = self.record
        assert record is not None

        def ours() -> dict[str, int]:
            return {name: record.pids[name] for name in names if self.alive(name)}

        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in ours().values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            try:
                wait_for(lambda: not ours(), timeout, "processes did not exit", interval=0.05)
                break
            except TimeoutError:
                continue
        for name in names:
            if child := self._children.pop(name, None):
                child.wait()  # reap our own children so no zombies linger in pytest
            record.pids.pop(name, None)
            record.argv.pop(name, None)
        if self.record_path.exists():
            self.save()
