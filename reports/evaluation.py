"""TFMA's results for one evaluation, as plain data: metrics per model and slice (None
where undefined on the slice), every threshold check, and the overall slice's plots and
confusion matrix. Read with metadata/evaluation_results.py, as TFMA's own loaders give
them, without importing TFMA's package."""
from __future__ import annotations

import dataclasses
import json
import math
import re

from google.protobuf import json_format

from metadata import evaluation_results
from metadata.evaluation_results import DIFF_SUFFIX, SliceKey

CANDIDATE, BASELINE = "candidate", "baseline"
OVERALL = "Overall"
# binary_accuracy and precision count a probability above this as the positive class.
DECISION_THRESHOLD = 0.5
# Metrics undefined on a slice without some examples, by what they divide by. TFMA still
# writes a number for some (AUC 0.0 on a slice of one class), which reads as a real 0.
_DEFINED_ONLY_WITH = {
    "auc": ("positives", "negatives"),
    "recall": ("positives",),
    "calibration": ("positives",),  # mean prediction / mean label
    "precision": ("predicted_positives",),
}


@dataclasses.dataclass(frozen=True)
class ThresholdCheck:
    metric: str
    slice: str
    kind: str  # "value" (absolute bound) or "change" (against the baseline)
    value: float | None  # the metric, or its difference to the baseline; None if absent
    bound: str  # e.g. ">= 0.7", "change >= -0.02"
    passed: bool


@dataclasses.dataclass(frozen=True)
class Evaluation:
    validation_ok: bool
    # {CANDIDATE or BASELINE: {slice name: {metric name: value}}}, diffs in the candidate's
    metrics: dict[str, dict[str, dict[str, float | None]]]
    thresholds: list[ThresholdCheck]
    # {CANDIDATE or BASELINE: TFMA's plots of the overall slice, by plot name}
    plots: dict[str, dict]

    @property
    def has_baseline(self) -> bool:
        return BASELINE in self.metrics

    @property
    def confusion_matrix(self) -> dict[str, float]:
        """The candidate's, on the whole eval split (counts_at_decision_threshold)."""
        return counts_at_decision_threshold(self.plots[CANDIDATE])


def slice_name(slice_key: SliceKey) -> str:
    """`()` -> "Overall", `(("label_name", "cats"),)` -> "label_name: cats"."""
    if not slice_key:
        return OVERALL
    return ", ".join(f"{feature}: {value}" for feature, value in slice_key)


def load_evaluation(uri: str) -> Evaluation:
    config = evaluation_results.eval_config(uri)
    candidate_name, baseline_name = evaluation_results.model_names(config)
    roles = {CANDIDATE: candidate_name}
    if baseline_name is not None:
        roles[BASELINE] = baseline_name
    metrics = {role: _in_slice_order(evaluation_results.metrics_by_slice(uri, name))
               for role, name in roles.items()}
    plots = {role: evaluation_results.plots_by_slice(uri, name) for role, name in roles.items()}
    validation = evaluation_results.validation_result(uri)
    return Evaluation(
        validation_ok=validation.validation_ok,
        metrics=blank_undefined(
            {role: {slice_name(key): _doubles(values) for key, values in by_slice}
             for role, by_slice in metrics.items()},
            {role: _slice_counts(by_slice) for role, by_slice in plots.items()}),
        thresholds=_threshold_checks(metrics[CANDIDATE], validation, config),
        plots={role: by_slice.get((), {}) for role, by_slice in plots.items()},
    )


def _threshold_checks(candidate_metrics: list, validation, config) -> list[ThresholdCheck]:
    """Every (threshold, slice) pair TFMA checked; passed unless TFMA recorded a failure."""
    failures = {(evaluation_results.slice_key_of(per_slice.slice_key), failure.metric_key.name,
                 failure.metric_threshold.HasField("change_threshold"))
                for per_slice in validation.metric_validations_per_slice
                for failure in per_slice.failures}
    checks = []
    for metric, kind, slicing_spec, threshold in configured_thresholds(config):
        name = metric + (DIFF_SUFFIX if kind == "change" else "")
        for slice_key, metrics in candidate_metrics:
            if slicing_spec is None or _applies(slicing_spec, slice_key):
                checks.append(ThresholdCheck(
                    metric=metric,
                    slice=slice_name(slice_key),
                    kind=kind,
                    value=_double(metrics[name]) if name in metrics else None,
                    bound=_bound(threshold, kind),
                    passed=(slice_key, metric, kind == "change") not in failures,
                ))
    return checks


def configured_thresholds(config) -> list[tuple]:
    """(metric name, "value" or "change", slicing spec or None for every slice, the
    bound) for each threshold on the eval config's metrics, in the config's order. (The
    Evaluator writes its config without change thresholds when it has no baseline.)"""
    thresholds = []
    for metrics_spec in config.metrics_specs:
        for metric_config in metrics_spec.metrics:
            name = metric_name(metric_config)
            per_slice = [(None, metric_config.threshold)] if metric_config.HasField(
                "threshold") else []
            per_slice += [(slicing_spec, sliced.threshold)
                          for sliced in metric_config.per_slice_thresholds
                          for slicing_spec in sliced.slicing_specs]
            for slicing_spec, threshold in per_slice:
                if threshold.HasField("value_threshold"):
                    thresholds.append((name, "value", slicing_spec, threshold.value_threshold))
                if threshold.HasField("change_threshold"):
                    thresholds.append((name, "change", slicing_spec, threshold.change_threshold))
    return thresholds


def metric_name(metric_config) -> str:
    """The name TFMA gives a metric: its config's "name", or its class name in snake case
    (BinaryAccuracy -> binary_accuracy, AUC -> auc)."""
    config = metric_config.config.strip()
    if config:
        settings = json.loads(config if config.startswith("{") else "{" + config + "}")
        if "name" in settings:
            return settings["name"]
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_",
                  metric_config.class_name).lower()


def _applies(slicing_spec, slice_key: SliceKey) -> bool:
    """Whether a slice is one the spec makes: exactly its feature keys, its feature
    values matched (TFMA's SingleSliceSpec.is_slice_applicable)."""
    columns = list(slicing_spec.feature_keys)
    values = dict(slicing_spec.feature_values)
    for feature, value in slice_key:
        if feature in values and str(value) == values.pop(feature):
            continue
        if feature not in columns:
            return False
        columns.remove(feature)
    return not columns and not values


def blank_undefined(metrics: dict[str, dict[str, dict[str, float | None]]],
                    counts: dict[str, dict[str, dict[str, float]]]
                    ) -> dict[str, dict[str, dict[str, float | None]]]:
    """`metrics` ({role: {slice: {metric: value}}}) with None for each metric undefined
    on its slice, given `counts` ({role: {slice: positives, negatives, predicted
    positives}}); a difference is undefined where either side is."""
    def undefined(role: str, slice_: str, metric: str) -> bool:
        slice_counts = counts.get(role, {}).get(slice_, {})
        return any(slice_counts.get(count) == 0 for count in _DEFINED_ONLY_WITH.get(metric, ()))

    blanked = {}
    for role, by_slice in metrics.items():
        blanked[role] = {}
        for slice_, values in by_slice.items():
            blanked[role][slice_] = {}
            for name, value in values.items():
                metric = name.removesuffix(DIFF_SUFFIX)
                roles = list(metrics) if name.endswith(DIFF_SUFFIX) else [role]
                blanked[role][slice_][name] = (
                    None if any(undefined(r, slice_, metric) for r in roles) else value)
    return blanked


def counts_at_decision_threshold(slice_plots: dict) -> dict[str, float]:
    """A slice's confusion matrix from its plots: TFMA's counts at its threshold nearest
    DECISION_THRESHOLD, as {"threshold": t, "true_negatives": n, ...}."""
    matrices = slice_plots["confusionMatrixAtThresholds"]["matrices"]
    matrix = min(matrices, key=lambda m: abs(m.get("threshold", 0.0) - DECISION_THRESHOLD))
    # TFMA's JSON leaves zero counts out.
    return {"threshold": matrix.get("threshold", 0.0),
            **{name: float(matrix.get(tfma_name, 0.0)) for name, tfma_name in [
                ("true_negatives", "trueNegatives"), ("false_positives", "falsePositives"),
                ("false_negatives", "falseNegatives"), ("true_positives", "truePositives")]}}


def _slice_counts(plots: dict[SliceKey, dict]) -> dict[str, dict[str, float]]:
    """Per slice with a confusion matrix: positives, negatives and predicted positives."""
    counts = {}
    for slice_key, slice_plots in plots.items():
        if not slice_plots.get("confusionMatrixAtThresholds", {}).get("matrices"):
            continue
        matrix = counts_at_decision_threshold(slice_plots)
        counts[slice_name(slice_key)] = {
            "positives": matrix["true_positives"] + matrix["false_negatives"],
            "negatives": matrix["true_negatives"] + matrix["false_positives"],
            "predicted_positives": matrix["true_positives"] + matrix["false_positives"],
        }
    return counts


def _in_slice_order(by_slice: dict) -> list:
    """Overall first, then by feature and value, as a reader scans them."""
    return sorted(by_slice.items(), key=lambda item: (len(item[0]), slice_name(item[0])))


def _bound(threshold, kind: str) -> str:
    if kind == "value":
        bounds = []
        if threshold.HasField("lower_bound"):
            bounds.append(f">= {threshold.lower_bound.value:g}")
        if threshold.HasField("upper_bound"):
            bounds.append(f"<= {threshold.upper_bound.value:g}")
        return " and ".join(bounds)
    higher_is_better = json_format.MessageToDict(threshold).get("direction") == "HIGHER_IS_BETTER"
    comparison = ">=" if higher_is_better else "<="
    bounds = []
    if threshold.HasField("absolute"):
        bounds.append(f"change {comparison} {threshold.absolute.value:g}")
    if threshold.HasField("relative"):
        bounds.append(f"relative change {comparison} {threshold.relative.value:g}")
    return " and ".join(bounds)


def _doubles(metrics: dict) -> dict[str, float | None]:
    """TFMA's {"name": {"doubleValue": v}} -> {"name": v}, NaN as None (JSON has no NaN)."""
    return {name: _double(value) for name, value in metrics.items() if "doubleValue" in value}


def _double(value: dict) -> float | None:
    number = float(value["doubleValue"])
    return None if math.isnan(number) else number
