"""One scheduled retraining cycle: `make retrain` (cron, or any scheduler, calls it).

Holds the pipeline root's lock (pipeline/run_lock.py) until the cycle ends, children
included, so that two runs never share the pipeline root and its MLMD store; returns at
once when no span newer than the last one ingested has arrived, and otherwise runs the
pipeline once with the TFX CLI (`tfx run create`), registering it first if it is not yet
registered.
"""
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Optional

from pipeline import run_lock, summary
from pipeline.config import PipelineConfig
from reports.report import write_run_report

SPAN_FOLDER = re.compile(r"span-(\d+)")
LOCAL_RUNNER = str(Path(__file__).with_name("local_runner.py"))


def registry_entry(config: PipelineConfig) -> Path:
    """Where the TFX CLI records a registered local pipeline (LOCAL_HOME moves it)."""
    home = os.environ.get("LOCAL_HOME") or os.path.join(os.environ["HOME"], "tfx", "local")
    return Path(home, config.pipeline_name, "pipeline_args.json")


def newest_span_on_disk(data_root: str) -> Optional[int]:
    spans = [int(match.group(1)) for path in Path(data_root).iterdir()
             if path.is_dir() and (match := SPAN_FOLDER.fullmatch(path.name))]
    return max(spans, default=None)


def newest_span_ingested(config: PipelineConfig) -> Optional[int]:
    """The largest span of any Examples artifact in MLMD (None before the first run)."""
    try:
        store = summary.metadata_store_of(config)
    except LookupError:
        return None
    examples = store.get_artifacts_by_type("Examples")
    return max((artifact.custom_properties["span"].int_value for artifact in examples
                if "span" in artifact.custom_properties), default=None)


def run_cycle(config: PipelineConfig) -> int:
    newest = newest_span_on_disk(config.data_root)
    if newest is None:
        print(f"No span-<N> folder in {config.data_root}: nothing to train on.", file=sys.stderr)
        return 1
    ingested = newest_span_ingested(config)
    if ingested is not None and newest <= ingested:
        print(f"No new span: span-{newest} was already ingested. Nothing to do.")
        return 0
    print(f"New span: span-{newest} (last ingested: {ingested}). Running the pipeline.")
    tfx_cli = str(Path(sys.executable).with_name("tfx"))
    # The local engine runs the registered runner file afresh each time: registering once
    # is enough.
    if not registry_entry(config).exists():
        subprocess.run([tfx_cli, "pipeline", "create", "--engine=local",
                        f"--pipeline_path={LOCAL_RUNNER}"], check=True)
    result = subprocess.run([tfx_cli, "run", "create", "--engine=local",
                             f"--pipeline_name={config.pipeline_name}"])
    if result.returncode != 0:
        return result.returncode
    html_report, _ = write_run_report(config)
    print("\n".join(summary.latest_run_summary(config).lines()))
    print(f"Report: {html_report}")
    return 0


def main() -> int:
    config = PipelineConfig.from_env()
    if not config.spans:
        print("Retraining needs SPANS=true and a DATA_ROOT of span-<N> folders.",
              file=sys.stderr)
        return 2
    config.check_data_root_exists()
    try:
        run_lock.hold(config, holder="a retraining cycle (make retrain)")
    except run_lock.Locked as error:
        print(error, file=sys.stderr)
        return run_lock.EXIT_LOCKED
    return run_cycle(config)


if __name__ == "__main__":
    sys.exit(main())
