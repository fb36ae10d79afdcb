"""One scheduled retraining cycle: `make retrain` (cron, or any scheduler, calls it).

Holds the pipeline root's lock (pipeline/run_lock.py) until the cycle ends, children
included, so that two runs never share the pipeline root and its MLMD store; returns at
once when no span newer than the last one ingested has arrived, and otherwise runs the
pipeline once with the TFX CLI (`tfx run create`, registering it first if its code or
settings changed), then prints the summary and writes the report (`cats-dogs-report`), as
`make pipeline` does.
"""
import re
import subprocess
import sys
from pathlib import Path
from typing import Optional

from data.folders import SPAN_FOLDER_PATTERN
from metadata.runs import latest_run_summary, newest_span_ingested
from pipeline import registration, run_lock
from pipeline.config import PipelineConfig
from pipeline.summary import summary_lines

SPAN_FOLDER = re.compile(SPAN_FOLDER_PATTERN.replace("{SPAN}", r"(\d+)"))
REPORT_CLI = str(Path(sys.executable).with_name("cats-dogs-report"))


def newest_span_on_disk(data_root: str) -> Optional[int]:
    spans = [int(match.group(1)) for path in Path(data_root).iterdir()
             if path.is_dir() and (match := SPAN_FOLDER.fullmatch(path.name))]
    return max(spans, default=None)


def run_cycle(config: PipelineConfig) -> int:
    newest = newest_span_on_disk(config.data_root)
    if newest is None:
        print(f"No span-<N> folder in {config.data_root}: nothing to train on.", file=sys.stderr)
        return 1
    ingested = newest_span_ingested(config.metadata_path)
    if ingested is not None and newest <= ingested:
        print(f"No new span: span-{newest} was already ingested. Nothing to do.")
        return 0
    print(f"New span: span-{newest} (last ingested: {ingested}). Running the pipeline.")
    registration.register(config)
    result = subprocess.run([registration.TFX_CLI, "run", "create", "--engine=local",
                             f"--pipeline_name={config.pipeline_name}"])
    if result.returncode != 0:
        return result.returncode
    # Flushed: the report command writes to the same output.
    print("\n".join(summary_lines(latest_run_summary(config.metadata_path))), flush=True)
    return subprocess.run([REPORT_CLI]).returncode


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
