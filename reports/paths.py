"""Where reports are written: `<output_dir>/reports/`, one name per run or pair of runs."""
from pathlib import Path

from pipeline.config import PipelineConfig


def reports_dir(config: PipelineConfig) -> Path:
    return Path(config.output_dir).absolute() / "reports"


def report_stem(*run_ids: str) -> str:
    """`2026-11-26T23:49:37.675152` -> `2026-11-26T23-49-37.675152`: colons trouble
    browsers' file URLs and other file systems; pairs are joined by `_vs_`."""
    return "_vs_".join(run_id.replace(":", "-").replace("/", "-") for run_id in run_ids)


def html_path(config: PipelineConfig, *run_ids: str) -> Path:
    return reports_dir(config) / f"{report_stem(*run_ids)}.html"


def json_path(config: PipelineConfig, *run_ids: str) -> Path:
    return reports_dir(config) / f"{report_stem(*run_ids)}.json"
