"""`cats-dogs-report [RUN] [--compare-with OTHER_RUN]` (or `make report`): writes a run's
evaluation report under <output_dir>/reports/ and prints where.

RUN is a pipeline run id (as `make pipeline` prints it) or an Evaluator output path;
without it, the latest run. Settings (OUTPUT_DIR, PIPELINE_NAME...) come from the
environment, as for the pipeline.
"""
from __future__ import annotations

import argparse
import sys

from models import console
from pipeline.config import PipelineConfig
from reports.report import write_comparison, write_run_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cats-dogs-report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", default=None,
                        help="run id or Evaluator output path (default: the latest run)")
    parser.add_argument("--compare-with", metavar="OTHER_RUN",
                        help="a second run id or Evaluator output path, shown beside RUN")
    arguments = parser.parse_args(argv)
    config = PipelineConfig.from_env()
    try:
        if arguments.compare_with:
            html_path, json_path = write_comparison(config, arguments.run,
                                                    arguments.compare_with)
        else:
            html_path, json_path = write_run_report(config, arguments.run)
    except LookupError as error:  # no such run, or nothing evaluated yet
        print(f"No report: {error}", file=sys.stderr)
        return 1
    console.show(f"Report: {html_path}")
    console.show(f"Report summary (JSON): {json_path}")
    return 0
