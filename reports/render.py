"""The report pages as HTML: plain markup and inline CSS, pictures as data URIs, no
scripts and no network, so the file opens anywhere, offline, as it is.

The pages are the Jinja2 templates in reports/templates/; this module hands them the
run's results and the tables' rows. Autoescaping writes every value from the data (run
ids, paths, slice and file names) as text, never as markup.
"""
from __future__ import annotations

from typing import NamedTuple

import jinja2

from models.features import SIZE_BUCKETS
from reports.charts import thumbnail
from reports.evaluation import BASELINE, CANDIDATE, DIFF_SUFFIX, OVERALL

# What the tables show, in TFMA's metric names.
OVERALL_METRICS = ("binary_accuracy", "auc", "precision", "recall", "calibration",
                   "example_count")
SLICE_METRICS = ("example_count", "binary_accuracy", "auc", "precision", "recall")


class Table(NamedTuple):
    headers: list[str]
    rows: list[list[str]]


def _number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _metric(name: str, value: float | None) -> str:
    return f"{value:.0f}" if name == "example_count" and value is not None else _number(value)


_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("reports", "templates"),
    autoescape=True,  # every template is HTML
    undefined=jinja2.StrictUndefined,  # a misspelt name fails the report, not blanks it
    trim_blocks=True, lstrip_blocks=True)
_TEMPLATES.filters.update(number=_number, thumbnail=thumbnail)


def run_page(report, charts: dict[str, str]) -> str:
    """`charts`: {chart name: data URI}, as report.run_charts draws them."""
    return _TEMPLATES.get_template("run.html.j2").render(
        report=report, charts=charts, overall=_overall_table(report.evaluation),
        slices=_slices_table(report.evaluation), size_buckets=_size_buckets())


def comparison_page(first, second, differences: dict[str, dict], slice_chart: str) -> str:
    """`differences`: {slice: {metric: second minus first}}."""
    return _TEMPLATES.get_template("comparison.html.j2").render(
        first=first, second=second, slice_chart=slice_chart,
        differences=_differences_table(first, second, differences))


def _overall_table(evaluation) -> Table:
    candidate = evaluation.metrics[CANDIDATE][OVERALL]
    if not evaluation.has_baseline:
        return Table(["metric", "candidate"],
                     [[name, _metric(name, candidate[name])] for name in _present(candidate)])
    baseline = evaluation.metrics[BASELINE][OVERALL]
    return Table(["metric", "candidate", "baseline", "difference"], [
        [name, _metric(name, candidate[name]), _metric(name, baseline.get(name)),
         _number(candidate.get(name + DIFF_SUFFIX), signed=True)]
        for name in _present(candidate)])


def _slices_table(evaluation) -> Table:
    candidate = evaluation.metrics[CANDIDATE]
    headers = ["slice", *SLICE_METRICS]
    if evaluation.has_baseline:
        headers.append("binary_accuracy vs baseline")
    rows = []
    for slice_name, values in candidate.items():
        row = [slice_name, *(_metric(metric, values.get(metric)) for metric in SLICE_METRICS)]
        if evaluation.has_baseline:
            row.append(_number(values.get("binary_accuracy" + DIFF_SUFFIX), signed=True))
        rows.append(row)
    return Table(headers, rows)


def _differences_table(first, second, differences: dict[str, dict]) -> Table:
    rows = []
    for slice_name, difference in differences.items():
        a = first.evaluation.metrics[CANDIDATE][slice_name]
        b = second.evaluation.metrics[CANDIDATE].get(slice_name, {})
        for metric in _present(a, SLICE_METRICS):
            rows.append([slice_name, metric, _metric(metric, a.get(metric)),
                         _metric(metric, b.get(metric)),
                         _number(difference.get(metric), signed=True)])
    return Table(["slice", "metric", "first", "second", "difference"], rows)


def _size_buckets() -> list[str]:
    """Each size bucket's name and range, e.g. "small: longer side 0-199 px"."""
    lower = 0
    buckets = []
    for name, bound in SIZE_BUCKETS:
        buckets.append(f"{name}: longer side {lower}-{bound - 1} px" if bound
                       else f"{name}: longer side {lower} px or more")
        lower = bound or lower
    return buckets


def _present(metrics: dict, names=OVERALL_METRICS) -> list[str]:
    return [name for name in names if name in metrics]
