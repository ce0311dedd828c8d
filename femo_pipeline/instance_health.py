"""Runs that died (SIGKILL, out of memory, power loss) never block the next one, and the command line obeys
SIGINT and SIGTERM.

A run claims a slot of the `duckdb` pool for each warehouse step; a run whose process is killed keeps its slot
and stays STARTED, and every later run waits for that slot forever. Here:
- `process_tags`: the tags the command line puts on its runs (host, process id and that process's start time, so
  a process id used again by another program is not mistaken for the run);
- `free_stale_claims`, called by `femo run|demo|ui` before anything else: a run in progress whose process is gone
  is marked failed with the reason, and the slots and queued claims of every run that is over are freed;
- `LocalRunLauncher`: Dagster's default launcher, able to say whether a run's process is alive, so the daemon's
  run monitoring (enabled in the committed dagster.yaml) fails such runs too, and frees their slots after
  `free_slots_after_run_end_seconds`;
- `obey_signals`: while a run executes in the command line's process, SIGINT or SIGTERM stops it: Dagster ends
  the current step; if it does not within a grace period (a step waiting for a pool slot never looks), the wait
  is interrupted, and as a last resort the run is marked failed, its slots freed, and the process exits. A
  second signal goes straight to the last resort.

A process is judged only on this host (its run names it, or the instance's storage is a local SQLite file).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter
from dagster._core.events import DagsterEventType
from dagster._core.launcher import CheckRunHealthResult, DefaultRunLauncher, WorkerStatus

from femo_pipeline.numerals import whole_number

HOST_TAG, PID_TAG, START_TAG = "femo/host", "femo/pid", "femo/process_start"
STOP_GRACE_S = 10.0  # seconds Dagster gets to end the run after a signal, before each stronger step
_RUNNING = (DagsterRunStatus.STARTING, DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING)


def process_start(pid: int) -> str | None:
    """The start time of process `pid` (clock ticks since boot, /proc/<pid>/stat), or None where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()
    except (OSError, IndexError):
        return None


def _started_at(pid: int) -> float | None:
    """process_start as a Unix time, or None."""
    ticks = process_start(pid)
    try:
        with open("/proc/stat", "rb") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith(b"btime "))
        return boot + int(ticks) / os.sysconf("SC_CLK_TCK") if ticks else None
    except (OSError, StopIteration, ValueError):
        return None


def process_tags() -> dict[str, str]:
    """Run tags naming this process: the host, the process id and its start time."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()), START_TAG: process_start(os.getpid()) or ""}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: an id beyond what any process can have
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _local_storage(instance: DagsterInstance) -> bool:
    """Whether the instance keeps its runs in SQLite files (so every run it holds ran on this machine)."""
    return "sqlite" in type(instance.run_storage).__name__.lower()


def _run_pid(instance: DagsterInstance, run: DagsterRun) -> tuple[int, str | None, float | None] | None:
    """(pid, start time tag, when Dagster recorded it) of the process that runs `run` on this host, or None."""
    tags = run.tags
    if (tagged := whole_number(tags.get(PID_TAG))) is not None:  # the command line's run: judged on its own host
        if tags.get(HOST_TAG) != socket.gethostname():
            return None
        return tagged, tags.get(START_TAG) or None, None
    if not _local_storage(instance):
        return None
    for record in reversed(instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT)):
        data = record.dagster_event.engine_event_data if record.dagster_event else None
        pid = data.metadata.get("pid") if data and data.metadata else None
        if pid is not None and (number := whole_number(str(pid.value))) is not None:
            return number, None, record.timestamp
    return None


def why_gone(instance: DagsterInstance, run: DagsterRun) -> str | None:
    """Why the process of a run in progress is known to be gone (it is not running, or its process id now belongs
    to a process started later), or None when it runs or cannot be judged from here."""
    found = _run_pid(instance, run)
    if found is None:
        return None
    pid, start, recorded = found
    where = f"process {pid} on {socket.gethostname()}"
    if not _alive(pid):
        return f"{where} is gone"
    if start is not None and process_start(pid) not in (None, start):
        return f"{where} is gone (its id now belongs to another process)"
    if recorded is not None:
        began = _started_at(pid)
        if began is not None and began > recorded + 1.0:
            return f"{where} is gone (its id now belongs to a process started after the run's)"
    return None


def _claimed_runs(instance: DagsterInstance) -> set[str]:
    storage = instance.event_log_storage
    runs = set(storage.get_concurrency_run_ids())  # runs with a queued claim
    for key in storage.get_concurrency_keys():
        runs |= {slot.run_id for slot in storage.get_concurrency_info(key).claimed_slots}
    return runs


def fail_dead_run(instance: DagsterInstance, run: DagsterRun, reason: str) -> None:
    """Mark a run whose process is gone failed, with the reason, and free its pool slots and claims."""
    instance.report_run_failed(run, f"The run's process died without ending it: {reason} (killed, out of memory "
                                    "or power loss). Marked failed, and its pool slots freed, so later runs go on.")
    if instance.event_log_storage.supports_global_concurrency_limits:
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)


def free_stale_claims(instance: DagsterInstance, say: Callable[[str], None] = print) -> list[str]:
    """Fail the runs in progress whose process is gone, and free the pool slots and queued claims of every run
    that is over (those a killed or hand-failed run kept). Returns the ids of the runs handled."""
    handled = []
    for run in instance.get_runs(RunsFilter(statuses=list(_RUNNING))):
        reason = why_gone(instance, run)
        if reason:
            fail_dead_run(instance, run, reason)
            say(f"femo: run {run.run_id} had died ({reason}): marked failed, its pool slots freed")
            handled.append(run.run_id)
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return handled
    claimed = _claimed_runs(instance) - set(handled)
    runs = {run.run_id: run for run in instance.get_runs(RunsFilter(run_ids=sorted(claimed)))} if claimed else {}
    for run_id in sorted(claimed):
        run = runs.get(run_id)
        if run is not None and run.is_finished:
            storage.free_concurrency_slots_for_run(run_id)
            say(f"femo: run {run_id} is over ({run.status.value}) but held pool slots: freed")
            handled.append(run_id)
        elif run is None and _local_storage(instance):  # deleted from the instance while it held slots
            storage.free_concurrency_slots_for_run(run_id)
            say(f"femo: pool slots held by run {run_id}, which this instance no longer has: freed")
            handled.append(run_id)
    return handled


class LocalRunLauncher(DefaultRunLauncher):
    """Dagster's default run launcher, which can also tell whether a run's process is alive: run monitoring then
    fails a run whose process died (SIGKILL, out of memory) instead of leaving it STARTED with its pool slots."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        reason = why_gone(self._instance, run)
        if reason:
            return CheckRunHealthResult(WorkerStatus.FAILED, reason)
        return CheckRunHealthResult(WorkerStatus.RUNNING, "")


class _Stop:
    """What obey_signals saw: the first signal's number (None: none came)."""

    signal: int | None = None


def _interrupt_main() -> None:
    """Raise KeyboardInterrupt in the main thread at its next instruction (it may be sleeping in Dagster's wait
    for a pool slot, which never looks at the interrupt Dagster recorded)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(threading.main_thread().ident),
                                               ctypes.py_object(KeyboardInterrupt))


@contextlib.contextmanager
def obey_signals(instance: DagsterInstance, run_id: str, grace: float = STOP_GRACE_S) -> Iterator[_Stop]:
    """SIGINT and SIGTERM stop the run executing in this process within about 2 x grace seconds (see the module's
    docstring); the block's _Stop says which signal came. Main thread only; elsewhere it does nothing."""
    stop = _Stop()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in handlers:  # outside Dagster's own handling (set-up, summary): KeyboardInterrupt, as Ctrl-C does
        signal.signal(s, signal.default_int_handler)
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    done = threading.Event()

    def last_resort(signum: int) -> None:
        print(f"femo: run {run_id} did not stop: marking it failed and exiting", file=sys.stderr, flush=True)
        with contextlib.suppress(Exception):
            run = instance.get_run_by_id(run_id)
            if run is not None and not run.is_finished:
                fail_dead_run(instance, run, f"stopped by signal {signal.Signals(signum).name}")
        os._exit(128 + signum)

    def watch() -> None:
        deadline, step = None, 0
        while not done.is_set():
            ready, _, _ = select.select([read_fd], [], [], 0.2)
            received = [b for b in (os.read(read_fd, 64) if ready else b"") if b in (signal.SIGINT, signal.SIGTERM)]
            if received and stop.signal is not None:
                last_resort(stop.signal)  # a second signal
            if received:
                stop.signal = received[0]
                deadline = time.monotonic() + grace
                print(f"femo: {signal.Signals(stop.signal).name} received: stopping run {run_id} (again to force)",
                      file=sys.stderr, flush=True)
            if deadline is not None and time.monotonic() >= deadline and not done.is_set():
                step += 1
                if step == 1:
                    _interrupt_main()
                    deadline = time.monotonic() + grace
                else:
                    last_resort(stop.signal)

    watcher = threading.Thread(target=watch, name="femo-signals", daemon=True)
    watcher.start()
    try:
        yield stop
    finally:
        done.set()
        watcher.join()
        signal.set_wakeup_fd(previous_fd)
        for s, handler in handlers.items():
            signal.signal(s, handler)
        os.close(read_fd)
        os.close(write_fd)
