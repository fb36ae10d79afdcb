"""The report pages as HTML: plain markup and inline CSS, pictures as data URIs, no
scripts and no network, so the file opens anywhere, offline, as it is."""
from __future__ import annotations

from html import escape

from models.features import SIZE_BUCKETS
from reports.charts import thumbnail
from reports.evaluation import BASELINE, CANDIDATE, DIFF_SUFFIX, OVERALL

# What the tables show, in TFMA's metric names.
OVERALL_METRICS = ("binary_accuracy", "auc", "precision", "recall", "calibration",
                   "example_count")
SLICE_METRICS = ("example_count", "binary_accuracy", "auc", "precision", "recall")

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; font-size: 0.9em; }
.verdict { font-size: 1.6em; font-weight: bold; padding: 0.6em 1em; border-radius: 6px;
           margin: 1em 0; }
.blessed { background: #dff5e1; color: #14632b; } .rejected { background: #fde2e1; color: #8a1c13; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ddd; padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.fail { color: #b3261e; font-weight: bold; } .pass { color: #14632b; }
.row { display: flex; flex-wrap: wrap; gap: 1em; } figure { margin: 0; }
figcaption { font-size: 0.9em; color: #555; text-align: center; }
.gallery figure { width: 170px; } .gallery img { border: 3px solid #b3261e; }
.columns { display: flex; gap: 2em; } .columns > div { flex: 1; }
"""


def run_page(report, charts: dict[str, str]) -> str:
    run, evaluation = report.run, report.evaluation
    sections = [
        _header(f"Evaluation report: run {run.run_id}", run),
        _verdict(run.blessed),
        "<h2>Thresholds</h2>", _thresholds_table(evaluation.thresholds),
        "<h2>Candidate against baseline (overall)</h2>", _overall_table(evaluation),
        "<h2>Slices</h2>", _slices_table(evaluation), _size_bucket_legend(),
        _figure(charts["slices"], "binary accuracy per slice"),
        "<h2>Where it errs</h2>",
        '<div class="row">',
        _figure(charts["confusion_matrix"],
                f"confusion matrix at threshold {report.evaluation.confusion_matrix['threshold']:g}"),
        _figure(charts["roc"], "ROC curve"),
        _figure(charts["precision_recall"], "precision-recall curve"),
        _figure(charts["calibration"], "calibration (reliability diagram)"),
        "</div>",
        "<h2>Training</h2>",
        _figure(charts["training"], "per-epoch scalars from TensorBoard logs")
        if "training" in charts else "<p>No TensorBoard logs recorded for this model.</p>",
        f"<h2>Most confidently wrong ({len(report.gallery)} of "
        f"{sum(p.wrong for p in report.predictions)} mistakes in "
        f"{len(report.predictions)} eval images)</h2>",
        _gallery(report.gallery),
    ]
    return _page(f"Run {run.run_id}", sections)


def comparison_page(first, second, differences: dict[str, dict], slice_chart: str) -> str:
    sections = [f"<h1>Comparison: {escape(first.run.run_id)} vs {escape(second.run.run_id)}</h1>",
                '<div class="columns">']
    for report in (first, second):
        sections += ["<div>", f"<h2>{escape(report.run.run_id)}</h2>",
                     _meta(report.run), _verdict(report.run.blessed),
                     _thresholds_table(report.evaluation.thresholds), "</div>"]
    sections.append("</div><h2>Metrics per slice (second minus first)</h2>")
    rows = []
    for slice_name, difference in differences.items():
        a = first.evaluation.metrics[CANDIDATE][slice_name]
        b = second.evaluation.metrics[CANDIDATE].get(slice_name, {})
        for metric in _present(a, SLICE_METRICS):
            rows.append([slice_name, metric, _metric(metric, a.get(metric)),
                         _metric(metric, b.get(metric)),
                         _number(difference.get(metric), signed=True)])
    sections.append(_table(["slice", "metric", "first", "second", "difference"], rows))
    sections.append(_figure(slice_chart, "binary accuracy per slice, both runs"))
    return _page("Comparison", sections)


def _header(title: str, run) -> str:
    return f"<h1>{escape(title)}</h1>{_meta(run)}"


def _meta(run) -> str:
    span = f"data span {run.span}" if run.span else "data not in spans"
    skipped = "".join(f'<p class="meta">Skipped run {escape(run_id)}: it did not complete '
                      "(failed, killed or still running).</p>"
                      for run_id in run.skipped_run_ids)
    return (f'{skipped}<p class="meta">{span}; TFMA results: {escape(run.evaluation_uri)}; '
            f"model: {escape(run.model_uri)}</p>")


def _verdict(blessed: bool) -> str:
    text = ("BLESSED: every threshold passed; the model ships" if blessed else
            "NOT BLESSED: a threshold failed; the model is not pushed")
    return f'<div id="verdict" class="verdict {"blessed" if blessed else "rejected"}">{text}</div>'


def _thresholds_table(checks) -> str:
    if not checks:
        return "<p>No thresholds configured.</p>"
    # Failures first: they are what a reviewer needs to see.
    ordered = sorted(checks, key=lambda check: check.passed)
    return _table(["metric", "slice", "kind", "value", "bound", "result"], [
        [check.metric, check.slice, check.kind,
         _number(check.value, signed=check.kind == "change"), check.bound,
         '<span class="pass">passed</span>' if check.passed
         else '<span class="fail">FAILED</span>']
        for check in ordered], raw_last_column=True)


def _overall_table(evaluation) -> str:
    candidate = evaluation.metrics[CANDIDATE][OVERALL]
    if not evaluation.has_baseline:
        return ("<p>No baseline: no model was blessed before this run.</p>"
                + _table(["metric", "candidate"],
                         [[name, _metric(name, candidate[name])]
                          for name in _present(candidate)]))
    baseline = evaluation.metrics[BASELINE][OVERALL]
    return _table(["metric", "candidate", "baseline", "difference"], [
        [name, _metric(name, candidate[name]), _metric(name, baseline.get(name)),
         _number(candidate.get(name + DIFF_SUFFIX), signed=True)]
        for name in _present(candidate)])


def _slices_table(evaluation) -> str:
    metrics = SLICE_METRICS
    candidate = evaluation.metrics[CANDIDATE]
    headers = ["slice", *metrics]
    if evaluation.has_baseline:
        headers.append("binary_accuracy vs baseline")
    rows = []
    for slice_name in candidate:
        values = candidate[slice_name]
        row = [slice_name, *(_metric(metric, values.get(metric)) for metric in metrics)]
        if evaluation.has_baseline:
            row.append(_number(values.get("binary_accuracy" + DIFF_SUFFIX), signed=True))
        rows.append(row)
    return _table(headers, rows)


def _size_bucket_legend() -> str:
    lower = 0
    parts = []
    for name, bound in SIZE_BUCKETS:
        parts.append(f"{name}: longer side {lower}-{bound - 1} px" if bound
                     else f"{name}: longer side {lower} px or more")
        lower = bound or lower
    return f'<p class="meta">Size buckets: {"; ".join(parts)}. n/a: undefined on the slice ' \
           "(e.g. AUC with one class).</p>"


def _gallery(predictions) -> str:
    if not predictions:
        return "<p>No eval image was misclassified.</p>"
    return '<div class="row gallery">' + "".join(
        f'<figure><img src="{thumbnail(p.image)}" alt="{escape(p.file_name)}">'
        f"<figcaption>{escape(p.file_name)}<br>true {escape(p.true_label)}, predicted "
        f"{escape(p.predicted_label)} ({p.confidence:.1%})</figcaption></figure>"
        for p in predictions) + "</div>"


def _figure(data_uri: str, caption: str) -> str:
    return (f'<figure><img src="{data_uri}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def _table(headers: list[str], rows: list[list[str]], raw_last_column: bool = False) -> str:
    def cells(row):
        escaped = [escape(str(cell)) for cell in row]
        if raw_last_column:
            escaped[-1] = row[-1]
        return "".join(f"<td>{cell}</td>" for cell in escaped)
    return ("<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr>"
            + "".join(f"<tr>{cells(row)}</tr>" for row in rows) + "</table>")


def _present(metrics: dict, names=OVERALL_METRICS) -> list[str]:
    return [name for name in names if name in metrics]


def _metric(name: str, value: float | None) -> str:
    return f"{value:.0f}" if name == "example_count" and value is not None else _number(value)


def _number(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _page(title: str, sections: list[str]) -> str:
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
            + "\n".join(sections) + "</body></html>\n")
