"""A femo job run from the command line: in this process, yet recorded as a run of the code location that
`femo ui` serves (so it shows on the UI's Overview page and under its job, like a run launched there), with a
line of progress at least every 30 s, and at the end what it found: the headline, or the first failure's asset
and reason, then the outputs that exist."""

from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import yaml

from femo_pipeline import headline
from femo_pipeline.resources import PROJECT_ROOT

HEARTBEAT = 30.0  # seconds: the longest the console stays silent during a run
WORKSPACE = PROJECT_ROOT / "workspace.yaml"
REPOSITORY = "__repository__"  # the name Dagster gives the repository of a Definitions object
NOT_EXECUTING = "Dependencies for step "  # how Dagster logs each step it leaves out below a failure (the summary counts them)


def code_location() -> str:
    """The location name `dagster dev -w workspace.yaml` gives femo's code: its location_name, else the module."""
    entry = (yaml.safe_load(WORKSPACE.read_text()) or {})["load_from"][0]["python_module"]
    return entry.get("location_name") or entry["module_name"]


def remote_origin(job_name: str):
    """The origin a run of `job_name` launched from the UI carries: the UI files a run under its job and on the
    Overview timeline by it (a run without one is listed under Runs only)."""
    from dagster._core.remote_origin import (
        ManagedGrpcPythonEnvCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    location = ManagedGrpcPythonEnvCodeLocationOrigin(
        LoadableTargetOrigin(executable_path=sys.executable, module_name="femo_pipeline.definitions",
                             working_directory=str(PROJECT_ROOT)), location_name=code_location())
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, REPOSITORY), job_name)


def execute(job: dg.JobDefinition, instance: dg.DagsterInstance, run_config: dict, partition_key: str | None,
            out: Callable[[str], None] = print, expected: dict[str, float] | None = None,
            tags: dict[str, str] | None = None, run_id: str | None = None) -> str:
    """Run `job` in this process and return the run id. In-memory hand-offs are pickled into the instance's
    storage as in a run the UI launches (execute_in_process would keep them in memory, and a later run of one
    asset would not find them). `expected`: seconds a step is expected to take, shown in the progress lines."""
    run_id = run_id or str(uuid.uuid4())
    origin = remote_origin(job.name)
    create = instance.create_run_for_job

    def create_with_origin(*args, **kwargs):
        return create(*args, **{**kwargs, "remote_job_origin": origin})

    progress = Progress(instance, run_id, out, expected or {})
    instance.create_run_for_job = create_with_origin  # this instance, this call only (removed below)
    progress.start()
    try:
        job.execute_in_process(
            instance=instance, run_config=run_config, partition_key=partition_key, run_id=run_id, tags=tags,
            raise_on_error=False, resources={"io_manager": dg.FilesystemIOManager()})
    finally:
        del instance.create_run_for_job
        progress.stop()
    return run_id


def clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


class Progress(threading.Thread):
    """Prints the run's steps as they finish, the messages its assets log (INFO and up), failed checks, and,
    whenever nothing was printed for HEARTBEAT seconds, which steps are running and for how long."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str, out: Callable[[str], None],
                 expected: dict[str, float], poll: float = 1.0):
        super().__init__(name="femo-progress", daemon=True)
        self.instance, self.run_id, self.out, self.expected, self.poll = instance, run_id, out, expected, poll
        self.started = time.monotonic()
        self.last_line = self.started
        self.running: dict[str, float] = {}
        self.cursor: str | None = None
        self._done = threading.Event()

    def say(self, text: str) -> None:
        self.last_line = time.monotonic()
        self.out(f"[{clock(self.last_line - self.started)}] {text}")

    def run(self) -> None:
        while not self._done.wait(self.poll):
            self.drain()
            if time.monotonic() - self.last_line >= HEARTBEAT - self.poll:  # the next poll would be late
                self.say(self.heartbeat())
        self.drain()

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=30)

    def heartbeat(self) -> str:
        now = time.monotonic()
        if not self.running:
            return "working (between steps)"
        parts = []
        for step, since in sorted(self.running.items(), key=lambda kv: kv[1]):
            text = f"{step} for {clock(now - since)}"
            if step in self.expected:
                text += f" of about {clock(self.expected[step])}"
            parts.append(text)
        return "still running: " + ", ".join(parts)

    def drain(self) -> None:
        try:
            while True:
                page = self.instance.get_records_for_run(self.run_id, cursor=self.cursor, limit=500)
                for record in page.records:
                    self.show(record.event_log_entry)
                self.cursor = page.cursor
                if not page.has_more:
                    return
        except Exception as exc:  # noqa: BLE001 - progress is a courtesy: never let it stop the run
            self.out(f"(progress unavailable: {exc})")
            self._done.set()

    def show(self, entry) -> None:
        event = entry.dagster_event
        if event is None:
            skipped = entry.user_message.startswith(NOT_EXECUTING)  # Dagster's, for steps below a failure
            if entry.level >= logging.INFO and entry.user_message and not skipped:
                self.say(f"  {entry.step_key or 'run'}: {entry.user_message}")
            return
        kind = event.event_type_value
        if kind == "STEP_START":
            self.running[event.step_key] = time.monotonic()
        elif kind == "STEP_SUCCESS":
            since = self.running.pop(event.step_key, None)
            self.say(f"done {event.step_key}" + (f" ({clock(time.monotonic() - since)})" if since else ""))
        elif kind == "STEP_FAILURE":
            self.running.pop(event.step_key, None)
            self.say(f"FAILED {event.step_key}: {failure_reason(event)}")
        elif kind == "ASSET_CHECK_EVALUATION" and not event.event_specific_data.passed:
            check = event.event_specific_data
            self.say(f"check {check.check_name} of {check.asset_key.to_user_string()} not passed "
                     f"({check.severity.value}){': ' + check.description if check.description else ''}")


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def failure_reason(event) -> str:
    """The reason a step failed, in one paragraph: a Failure's description, else the innermost error's message."""
    data = event.event_specific_data
    user = getattr(data, "user_failure_data", None)
    if user is not None and user.description:
        return " ".join(user.description.split())
    error = data.error
    while error is not None and error.cause is not None and "DagsterExecutionStepExecutionError" in (error.cls_name or ""):
        error = error.cause
    message = (error.message if error else "") or "unknown error"
    return " ".join(message.split())


@dataclass
class Outcome:
    status: str
    seconds: float
    materialized: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # asset -> reason it recorded
    failures: list[tuple[str, str]] = field(default_factory=list)  # (step, reason), in order
    not_run: list[str] = field(default_factory=list)  # assets planned that neither materialized nor failed
    checks_passed: int = 0
    checks_not_passed: list[str] = field(default_factory=list)
    answer: str | None = None


def outcome(instance: dg.DagsterInstance, run_id: str, reports_dir: Path) -> Outcome:
    """What the run did, from its events in the instance."""
    run = instance.get_run_by_id(run_id)
    stats = instance.get_run_stats(run_id)
    seconds = (stats.end_time or time.time()) - (stats.start_time or stats.launch_time or time.time())
    found = Outcome(status=run.status.value if run else "UNKNOWN", seconds=seconds)
    planned = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type_value
        if kind == "ASSET_MATERIALIZATION_PLANNED":
            planned.append(event.asset_key.to_user_string())
        elif kind == "ASSET_MATERIALIZATION":
            materialization = event.event_specific_data.materialization
            name = materialization.asset_key.to_user_string()
            found.materialized.append(name)
            if "skipped" in materialization.metadata:
                found.skipped[name] = str(materialization.metadata["skipped"].value)
        elif kind == "STEP_FAILURE":
            found.failures.append((event.step_key, failure_reason(event)))
        elif kind == "ASSET_CHECK_EVALUATION":
            check = event.event_specific_data
            if check.passed:
                found.checks_passed += 1
            else:
                found.checks_not_passed.append(f"{check.check_name} ({check.severity.value})")
    failed = {step for step, _ in found.failures}
    found.not_run = sorted(set(planned) - set(found.materialized) - failed)
    if "benchmark_report" in found.materialized and "benchmark_report" not in found.skipped:
        report = headline.read(reports_dir)
        found.answer = report["headline"] if report else None
    return found


def describe(found: Outcome) -> list[str]:
    """The end of a run in a few lines: the answer (or why there is none) first, then what ran."""
    lines = []
    if found.answer:
        lines.append(f"ANSWER: {found.answer}")
    elif "benchmark_report" in found.skipped:
        lines.append(f"No answer: benchmark_report skipped: {found.skipped['benchmark_report']}")
    elif found.failures:
        lines.append(f"No answer: benchmark_report did not run ({found.failures[0][0]} failed first, below)")
    else:
        lines.append("No answer: benchmark_report did not run in this run")
    if found.failures:
        step, reason = found.failures[0]
        lines.append(f"FIRST FAILURE: {step}: {reason}")
        if len(found.failures) > 1:
            lines.append(f"  also failed: {', '.join(s for s, _ in found.failures[1:])}")
        if found.not_run:
            lines.append(f"  not run because of it: {plural(len(found.not_run), 'asset')} ({', '.join(found.not_run[:6])}"
                         f"{', ...' if len(found.not_run) > 6 else ''})")
    lines.append(f"run {found.status.lower()} in {clock(found.seconds)}: {len(set(found.materialized))} assets "
                 f"materialized, {len(found.failures)} failed, {len(found.not_run)} not run")
    skipped = [f"{a} ({r})" for a, r in sorted(found.skipped.items()) if a != "benchmark_report"]
    if skipped:
        lines.append("skipped, with the reason in their metadata: " + "; ".join(skipped))
    checks = found.checks_passed + len(found.checks_not_passed)
    if checks:
        lines.append(f"asset checks: {found.checks_passed} of {checks} passed"
                     + (f"; not passed: {', '.join(found.checks_not_passed)}" if found.checks_not_passed else ""))
    return lines
