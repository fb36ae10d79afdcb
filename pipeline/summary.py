"""What the latest pipeline run did, read back from MLMD: `python -m pipeline.summary`,
the closing lines of `make pipeline` and `make retrain`."""
from __future__ import annotations

import argparse
import sys

from metadata.runs import RunSummary, latest_run_summary
from models import console
from pipeline.config import PipelineConfig

# Overall metrics worth a line in the summary, in TFMA's names.
SUMMARY_METRICS = ("binary_accuracy", "auc", "precision", "recall", "example_count")


def summary_lines(summary: RunSummary) -> list[str]:
    metrics = ", ".join(f"{name} {value:.0f}" if name == "example_count" else
                        f"{name} {value:.3f}" for name, value in
                        ((name, summary.metrics[name]) for name in SUMMARY_METRICS
                         if name in summary.metrics))
    verdict = "BLESSED" if summary.blessed else "NOT blessed (thresholds not met)"
    return [
        *(f"Skipped run {run_id}: it did not complete (failed, killed or still running)."
          for run_id in summary.skipped_run_ids),
        f"Run {summary.run_id}: model {verdict}.",
        f"Eval metrics: {metrics}.",
        *(f"Threshold not met: {failure}" for failure in summary.failed_thresholds),
        f"Pushed to {summary.pushed_model_dir}" if summary.pushed_model_dir
        else "Nothing pushed: the serving directory is unchanged.",
        f"TFMA results: {summary.evaluation_uri}",
    ]


def main() -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    config = PipelineConfig.from_env()
    try:
        summary = latest_run_summary(config.metadata_path)
    except LookupError as error:
        print(f"No summary: {error}", file=sys.stderr)
        return 1
    for line in summary_lines(summary):
        console.show(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
