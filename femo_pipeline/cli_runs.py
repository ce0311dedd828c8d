"""The commands that run the pipeline: `femo demo`, `femo run`, `femo train` and `femo check`. Inputs are checked
before any work; training prints its estimate first; the run prints a line at least every 30 s; the end says the
answer or the first failure, then lists the outputs that exist."""

from __future__ import annotations

import sys
from pathlib import Path

from femo_pipeline.cli import me, prepare_environment, prepare_pools, today_partition


def run_all(profile: str | None, train: bool = False, train_options: dict | None = None, check_only: bool = False) -> int:
    """The answer job (train: with femo's CNN trained first): inputs checked before any work, progress at least
    every 30 s, and at the end the headline or the first failure, then the outputs that exist."""
    home = prepare_environment(profile)
    from femo_pipeline import preflight, runner
    from femo_pipeline.resources import storage_from_env

    storage = storage_from_env()
    inputs = preflight.check(storage, train)
    for note in inputs.notes:
        print(f"femo: note: {note}")
    if inputs.problems:
        print(f"femo: cannot start: {len(inputs.problems)} problem{'s' if len(inputs.problems) > 1 else ''} with "
              "the inputs (nothing was run):", file=sys.stderr)
        for problem in inputs.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    if check_only:
        print(f"femo: inputs look right for the {inputs.profile} profile")
        if train:  # how long `femo train` would take here, without training
            training_estimate(storage, train_options or {})
        return 0
    import dagster as dg

    from femo_pipeline.definitions import defs

    job = defs.resolve_job_def("femo_all" if train else "femo_answer")
    run_config: dict = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}  # the progress lines say it
    expected = {}
    if train:
        run_config["ops"] = {"emotion_model": {"config": train_options or {}}}
        expected["emotion_model"] = training_estimate(storage, train_options or {})
    what = "training femo's CNN, then answering" if train else "answering with the shipped models (no training)"
    print(f"femo: job {job.name}, profile {inputs.profile}: {what}; a line at least every "
          f"{runner.HEARTBEAT:.0f} s", flush=True)
    from dagster._core.utils import make_new_run_id

    from femo_pipeline import instance_health

    with dg.DagsterInstance.get() as instance:
        prepare_pools(instance)
        instance_health.free_stale_claims(instance)  # a killed run's pool slots would block this one
        run_id = make_new_run_id()
        with instance_health.obey_signals(instance, run_id) as stopped:
            runner.execute(job, instance, run_config, today_partition(), run_id=run_id,
                           out=lambda line: print(f"femo {line}", flush=True), expected=expected,
                           tags=instance_health.process_tags())
        found = runner.outcome(instance, run_id, storage.root / "reports")
    print()
    for line in runner.describe(found):
        print(f"femo: {line}")
    print("\nWhere to look:\n" + "\n".join(where_to_look(storage.root.resolve(), home, found, inputs.profile)))
    if stopped.signal:
        return 128 + stopped.signal
    return 0 if found.status == "SUCCESS" else 1


def training_estimate(storage, options: dict) -> float:
    """Print how long emotion_model will train on this machine (measured on a short trial) and return it."""
    from femo_pipeline import demo_data, runner
    from femo_pipeline import model as femo_model
    from femo_pipeline import training_estimate as te
    from femo_pipeline.defs.model.model_training import ModelConfig, train_config

    config = ModelConfig(**options)
    recipe = train_config(config, precision=femo_model.resolve_precision(config.precision))
    folder = storage.source_plan("fer2013").path
    images = te.training_images(folder / "train" if folder else None, storage.root / "warehouse" / "femo.duckdb",
                                demo_data.DemoSpec().fer_train_per_class)
    if config.max_train_images:
        images = min(images, config.max_train_images)
    print("femo: measuring this machine's training speed (a short trial of the same network) ...", flush=True)
    speed = te.measure_speed(recipe)
    seconds = te.estimate_seconds(images, recipe, speed)
    plan = f"a {recipe.minutes:g}-minute budget" if recipe.minutes else f"{recipe.epochs} epochs"
    print(f"femo: training estimate: {images:,} FER-2013 Training images, {plan}, width {recipe.width}, at "
          f"{speed:,.0f} images/s here: about {runner.clock(seconds)} of training, plus the rest of the run",
          flush=True)
    return seconds


def where_to_look(root: Path, home: Path, found, profile: str) -> list[str]:
    """The outputs that exist (the report marked when this run did not write it), then the next commands."""
    fresh = "benchmark_report" in found.materialized
    report = root / "reports" / "benchmark.md"
    rows = [("warehouse (DuckDB)", root / "warehouse" / "femo.duckdb", ""),
            ("ERD", root / "warehouse" / "erd.png", "  (Mermaid: erd.mmd)"),
            ("benchmark report", report, "  (also .html, .json)" + ("" if fresh else "  FROM AN EARLIER RUN")),
            ("plots", root / "plots", ""),
            ("serving snapshot", root / "serving" / "femo.duckdb", ""),
            ("staged tables", root / "staging", "")]
    if profile == "demo":
        rows.append(("demo inputs", root / "demo", "  (synthetic)"))
    lines = [f"  {label + ':':<21}{path}{note}" for label, path, note in rows
             if path.is_file() or (path.is_dir() and any(path.iterdir()))]
    lines.append(f"  {'Dagster instance:':<21}{home}")
    lines.append(f"  {'Dagster UI:':<21}{me()} ui   (http://127.0.0.1:3000: Catalog > benchmark_report; Overview "
                 "lists this run)")
    if (root / "serving" / "femo.duckdb").is_file():
        lines.append(f"  {'gallery + HTTP API:':<21}{me()} serve   (http://127.0.0.1:8000/ ; /report, /benchmark, /docs)")
    if (root / "warehouse" / "femo.duckdb").is_file():
        lines.append(f"  {'query it:':<21}{me()} sql \"SELECT * FROM all_images LIMIT 5\"")
    return lines
