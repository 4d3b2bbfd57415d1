"""The harness's process bookkeeping (tests/harness/processes.py), on real child processes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.harness import wait_for
from tests.harness.processes import ProcessGroup


@dataclass
class Record:
    pids: dict[str, int] = field(default_factory=dict)
    argv: dict[str, list[str]] = field(default_factory=dict)


class NotStarted(Exception):
    pass


def group(tmp_path: Path) -> ProcessGroup[Record]:
    return ProcessGroup(tmp_path / "record.json", tmp_path / "logs", tmp_path, NotStarted)


def test_another_process_sees_and_stops_what_one_started(tmp_path: Path) -> None:
    starter = group(tmp_path)
    starter.record = Record()
    starter.spawn("sleeper", ["sleep", "300"])
    assert starter.status() == {"sleeper": True}

    # A second group (as `make cluster-down` is a second process) knows the sleeper by its record alone.
    stopper = group(tmp_path)
    assert stopper.load(Record) is not None
    # Until the child has exec'd, its /proc cmdline is still Python's: poll, as `down` after `up` never races.
    wait_for(lambda: stopper.status() == {"sleeper": True}, 10, "the sleeper never showed its command line")
    stopper.terminate(["sleeper"], timeout=5)
    assert stopper.status() == {}
    assert group(tmp_path).load(Record) == Record()  # the record on disk forgot it too
    assert not starter.alive("sleeper")
    starter.terminate(["sleeper"], timeout=5)  # reaps the child


def test_a_reused_pid_is_not_ours(tmp_path: Path) -> None:
    processes = group(tmp_path)
    processes.record = Record()
    processes.spawn("sleeper", ["sleep", "300"])
    pid = processes.record.pids["sleeper"]
    reader = group(tmp_path)
    reader.load(Record)
    assert reader.record is not None
    wait_for(lambda: reader.alive("sleeper"), 10, "the sleeper never showed its command line")
    reader.record.argv["sleeper"] = ["sleep", "301"]  # the same pid now runs something else
    assert not reader.alive("sleeper")
    reader.terminate(["sleeper"], timeout=1)  # so it must not be signalled
    assert processes.alive("sleeper") and processes.record.pids["sleeper"] == pid
    processes.terminate(["sleeper"], timeout=5)
    assert not processes.alive("sleeper")


def test_a_process_that_dies_during_start_fails_fast_with_its_log(tmp_path: Path) -> None:
    processes = group(tmp_path)
    processes.record = Record()
    processes.spawn("broken", ["sh", "-c", "echo missing flag --port >&2; exit 3"])
    with pytest.raises(NotStarted, match=r"(?s)broken exited during start.*missing flag --port"):
        processes.wait("broken", lambda: False, timeout=30)
    processes.terminate(["broken"], timeout=1)


def test_a_process_that_never_gets_ready_times_out_with_its_log(tmp_path: Path) -> None:
    processes = group(tmp_path)
    processes.record = Record()
    processes.spawn("slow", ["sh", "-c", "echo warming up; exec sleep 300"])
    with pytest.raises(NotStarted, match=r"(?s)slow not ready.*warming up"):
        processes.wait("slow", lambda: False, timeout=0.5)
    processes.terminate(["slow"], timeout=5)
    processes.forget()
    assert processes.record is None and not (tmp_path / "record.json").exists()
