"""One scheduled retraining cycle: `make retrain` (cron, or any scheduler, calls it).

Holds the pipeline root's lock (pipeline/run_lock.py) until the cycle ends, children
included, so that two runs never share the pipeline root and its MLMD store; returns at
once when no complete span newer than the last one a completed run trained has arrived
(a span that a failed or killed run ingested is trained again), and otherwise runs the
pipeline once with the TFX CLI (`tfx run create`, registering it first if its code or
settings changed), then prints the summary and writes the report (`cats-dogs-report`), as
`make pipeline` does.
"""
import argparse
import subprocess
import sys
from pathlib import Path

from data.folders import SPAN_COMPLETE_MARKER, span_number
from metadata.runs import latest_run_summary, span_ingestions
from models import console
from pipeline import registration, run_lock
from pipeline.config import PipelineConfig
from pipeline.summary import summary_lines

REPORT_CLI = str(Path(sys.executable).with_name("cats-dogs-report"))


def span_folders(data_root: str) -> dict[int, bool]:
    """The `span-<N>` folders: N -> whether the drop is complete (holds its marker)."""
    return {number: (path / SPAN_COMPLETE_MARKER).exists() for path in Path(data_root).iterdir()
            if path.is_dir() and (number := span_number(path.name)) is not None}


def span_to_train(config: PipelineConfig, spans: dict[int, bool]) -> int | None:
    """The span this cycle trains, as ImageExampleGen's driver resolves it (the newest
    complete one), unless a run that ingested it completed; None when there is none.
    Prints which spans wait, and why."""
    newest_complete = max((number for number, complete in spans.items() if complete),
                          default=None)
    for number in sorted(number for number, complete in spans.items() if not complete
                         and (newest_complete is None or number > newest_complete)):
        marker = Path(config.data_root, f"span-{number}", SPAN_COMPLETE_MARKER)
        console.show(f"Waiting for span-{number}: no {marker} yet (a drop's writer leaves it last, "
              "once every file is in).")
    if newest_complete is None:
        console.show("No complete span yet. Nothing to do.")
        return None
    ingestions = span_ingestions(config.metadata_path)
    trained = max((ingestion for ingestion in ingestions if ingestion.run_completed),
                  key=lambda ingestion: ingestion.span, default=None)
    if trained is not None and newest_complete <= trained.span:
        console.show(f"No new span: span-{newest_complete} was trained by run {trained.run_id}, "
              "which completed. Nothing to do.")
        return None
    for ingestion in ingestions:
        if ingestion.span == newest_complete and not ingestion.run_completed:
            console.show(f"span-{newest_complete} was ingested by run {ingestion.run_id}, which did "
                  "not complete (it failed or was stopped): training it again.")
    console.show(f"New span: span-{newest_complete} (last trained: "
          f"{'none' if trained is None else f'span-{trained.span}'}). Running the pipeline.")
    return newest_complete


def run_cycle(config: PipelineConfig) -> int:
    spans = span_folders(config.data_root)
    if not spans:
        print(f"No span-<N> folder in {config.data_root}: nothing to train on.", file=sys.stderr)
        return 1
    if span_to_train(config, spans) is None:
        return 0
    registration.register(config)
    result = subprocess.run([registration.TFX_CLI, "run", "create", "--engine=local",
                             f"--pipeline_name={config.pipeline_name}"])
    if result.returncode != 0:
        return result.returncode
    # Flushed: the report command writes to the same output.
    for line in summary_lines(latest_run_summary(config.metadata_path)):
        console.show(line)
    return subprocess.run([REPORT_CLI]).returncode


def main() -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
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
