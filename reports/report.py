"""One run's report (or two runs' comparison): gathered from MLMD, the Evaluator's files
(TFMA's results and the candidate's prediction for each eval image) and the Trainer's
logs, then written as a self-contained HTML file and a JSON summary."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from metadata.eval_predictions import Prediction, read_predictions
from metadata.runs import RunEvaluation, run_evaluation
from pipeline.config import PipelineConfig
from reports import charts, paths, render
from reports.evaluation import CANDIDATE, Evaluation, load_evaluation
from reports.training import Curves, read_training_curves

# The metric the slice charts draw, and the pipeline's thresholds are on.
KEY_METRIC = "binary_accuracy"
GALLERY_SIZE = 12


@dataclasses.dataclass(frozen=True)
class RunReport:
    run: RunEvaluation
    evaluation: Evaluation
    class_names: list[str]  # index 1 is the positive class
    predictions: list[Prediction]
    training_curves: Curves

    @property
    def gallery(self) -> list[Prediction]:
        """The most confidently wrong predictions."""
        mistakes = [prediction for prediction in self.predictions if prediction.wrong]
        return sorted(mistakes, key=lambda prediction: -prediction.confidence)[:GALLERY_SIZE]


def build_run_report(config: PipelineConfig, run: str | None = None) -> RunReport:
    evaluated = run_evaluation(config.metadata_path, run)
    return RunReport(
        run=evaluated,
        evaluation=load_evaluation(evaluated.evaluation_uri),
        class_names=list(config.class_names),
        predictions=read_predictions(evaluated.evaluation_uri),
        training_curves=(read_training_curves(evaluated.model_run_uri)
                         if evaluated.model_run_uri else {}),
    )


def run_summary(report: RunReport) -> dict:
    """The machine-readable summary: verdict, thresholds, metrics, confusion matrix and
    mistakes; metric values are TFMA's, NaN written as null."""
    return {
        "run_id": report.run.run_id,
        "skipped_run_ids": list(report.run.skipped_run_ids),
        "blessed": report.run.blessed,
        "validation_ok": report.evaluation.validation_ok,
        "evaluation_uri": report.run.evaluation_uri,
        "span": report.run.span,
        "thresholds": [dataclasses.asdict(check) for check in report.evaluation.thresholds],
        "metrics": report.evaluation.metrics,
        "confusion_matrix": report.evaluation.confusion_matrix,
        "eval_examples": len(report.predictions),
        "mistakes": sum(prediction.wrong for prediction in report.predictions),
        "most_confidently_wrong": [
            {"file_name": p.file_name, "true_label": p.true_label,
             "predicted_label": p.predicted_label, "confidence": p.confidence}
            for p in report.gallery],
    }


def run_charts(report: RunReport) -> dict[str, str]:
    """{chart name: data URI} for the single-run page."""
    curves = {role: _curve_points(plots["confusionMatrixAtThresholds"]["matrices"])
              for role, plots in report.evaluation.plots.items() if plots}
    drawn = {
        "slices": charts.slice_chart(
            {role: {name: metrics.get(KEY_METRIC) for name, metrics in by_slice.items()}
             for role, by_slice in report.evaluation.metrics.items()}, KEY_METRIC),
        "confusion_matrix": charts.confusion_matrix_chart(report.evaluation.confusion_matrix,
                                                          report.class_names),
        "roc": charts.roc_chart({role: (fpr, tpr) for role, (fpr, tpr, _) in curves.items()}),
        "precision_recall": charts.precision_recall_chart(
            {role: (tpr, precision) for role, (_, tpr, precision) in curves.items()}),
        "calibration": charts.calibration_chart(
            report.evaluation.plots[CANDIDATE]["calibrationHistogramBuckets"]["buckets"]),
    }
    if report.training_curves:
        drawn["training"] = charts.training_chart(report.training_curves)
    return drawn


def comparison_summary(first: RunReport, second: RunReport) -> dict:
    return {"runs": [run_summary(first), run_summary(second)],
            "difference": {name: _difference(first, second, name)
                           for name in first.evaluation.metrics[CANDIDATE]}}


def write_run_report(config: PipelineConfig, run: str | None = None) -> tuple[Path, Path]:
    report = build_run_report(config, run)
    html = render.run_page(report, run_charts(report))
    return _write(config, [report.run.run_id], html, run_summary(report))


def write_comparison(config: PipelineConfig, first_run: str | None,
                     second_run: str) -> tuple[Path, Path]:
    first, second = build_run_report(config, first_run), build_run_report(config, second_run)
    slice_chart = charts.slice_chart(
        {report.run.run_id: {name: metrics.get(KEY_METRIC)
                             for name, metrics in report.evaluation.metrics[CANDIDATE].items()}
         for report in (first, second)}, KEY_METRIC)
    summary = comparison_summary(first, second)
    html = render.comparison_page(first, second, summary["difference"], slice_chart)
    return _write(config, [first.run.run_id, second.run.run_id], html, summary)


def _difference(first: RunReport, second: RunReport, slice_name: str) -> dict:
    """second minus first, for each metric both runs have on the slice."""
    a = first.evaluation.metrics[CANDIDATE][slice_name]
    b = second.evaluation.metrics[CANDIDATE].get(slice_name, {})
    return {name: b[name] - a[name] for name in a
            if b.get(name) is not None and a[name] is not None}


def _curve_points(matrices: list[dict]) -> tuple[list[float], list[float], list[float]]:
    """(false positive rates, recalls, precisions) over TFMA's thresholds, by rate.

    TFMA's JSON leaves out zeros and writes undefined values (e.g. a precision with no
    positive prediction) as the string "NaN": those points are skipped."""
    points = sorted((m.get("falsePositiveRate", 0.0), m.get("recall", 0.0),
                     m.get("precision", 0.0)) for m in matrices
                    if all(not isinstance(m.get(k, 0.0), str)
                           for k in ("falsePositiveRate", "recall", "precision")))
    return tuple(list(values) for values in zip(*points))


def _write(config: PipelineConfig, run_ids: list[str], html: str,
           summary: dict) -> tuple[Path, Path]:
    html_path, json_path = paths.html_path(config, *run_ids), paths.json_path(config, *run_ids)
    contents = {html_path: html,
                json_path: json.dumps({**summary, "html": str(html_path)}, indent=2,
                                      allow_nan=False)}
    html_path.parent.mkdir(parents=True, exist_ok=True)
    for path, text in contents.items():
        _write_atomically(path, text)
    return html_path, json_path


def _write_atomically(path: Path, text: str) -> None:
    """A reader sees the previous file or the new one, never half of one: written beside
    it under a hidden name, then renamed over it."""
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        staging.write_text(text, encoding="utf-8")
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)

