"""What the pipeline's runs did, oldest first, from MLMD: `make history`."""
import argparse
import sys
from pathlib import Path

from metadata.runs import summarize_run
from metadata.store import open_store, pipeline_runs
from pipeline.config import PipelineConfig

COLUMNS = ("run", "spans", "eval accuracy", "blessed", "pushed version")


def history_rows(config: PipelineConfig) -> list[tuple[str, ...]]:
    store = open_store(config.metadata_path)
    rows = []
    for run in pipeline_runs(store):
        try:
            run_summary = summarize_run(store, run)
        except LookupError:
            rows.append((run.name, "-", "-", "incomplete run", "-"))
            continue
        accuracy = run_summary.metrics.get("binary_accuracy")
        rows.append((
            run.name,
            ",".join(str(span) for span in run_summary.spans if span) or "-",
            f"{accuracy:.3f}" if accuracy is not None else "-",
            "yes" if run_summary.blessed else "no",
            Path(run_summary.pushed_model_dir).name if run_summary.pushed_model_dir else "-",
        ))
    return rows


def format_table(rows: list[tuple[str, ...]], columns: tuple[str, ...] = COLUMNS) -> str:
    """The rows under their column names, aligned (also `make settings`'s table)."""
    widths = [max(len(row[i]) for row in [columns, *rows]) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in [columns, *rows])


def main() -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    try:
        rows = history_rows(PipelineConfig.from_env())
    except LookupError as error:
        print(f"No history: {error}", file=sys.stderr)
        return 1
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
