"""TFMA's results for one evaluation, through TFMA's own loaders, as plain data:
metrics per model and slice (None where undefined on the slice), every threshold check,
and the overall slice's plots."""
from __future__ import annotations

import dataclasses
import math

import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_specs, metric_types
from tensorflow_model_analysis.slicer import slicer_lib
from tensorflow_model_analysis.utils import model_util

CANDIDATE, BASELINE = "candidate", "baseline"
OVERALL = "Overall"
# TFMA names the candidate-minus-baseline value of metric m "m_diff".
DIFF_SUFFIX = "_diff"
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

SliceKey = tuple  # TFMA's: () overall, or ((feature, value), ...)


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


def slice_name(slice_key: SliceKey) -> str:
    """`()` -> "Overall", `(("label_name", "cats"),)` -> "label_name: cats"."""
    if not slice_key:
        return OVERALL
    return ", ".join(f"{feature}: {_text(value)}" for feature, value in slice_key)


def load_evaluation(uri: str) -> Evaluation:
    config = tfma.load_eval_result(uri).config
    baseline_spec = model_util.get_baseline_model_spec(config)
    [candidate_spec] = [spec for spec in config.model_specs if not spec.is_baseline]
    roles = {CANDIDATE: candidate_spec.name or None}
    if baseline_spec:
        roles[BASELINE] = baseline_spec.name
    results = {role: tfma.load_eval_result(uri, model_name=name) for role, name in roles.items()}
    validation = tfma.load_validation_result(uri)
    candidate = results[CANDIDATE]
    metrics = {role: {slice_name(key): _doubles(metrics)
                      for key, metrics in _in_slice_order(result.get_metrics_for_all_slices())}
               for role, result in results.items()}
    return Evaluation(
        validation_ok=validation.validation_ok,
        metrics=blank_undefined(metrics, {role: _slice_counts(result)
                                          for role, result in results.items()}),
        thresholds=_threshold_checks(candidate, candidate_spec.name, validation, config),
        plots={role: _overall_plots(result) for role, result in results.items()},
    )


def _threshold_checks(candidate, candidate_name: str, validation,
                      config) -> list[ThresholdCheck]:
    """Every (threshold, slice) pair TFMA checked; passed unless TFMA recorded a failure."""
    failures = {(slicer_lib.deserialize_slice_key(per_slice.slice_key),
                 metric_types.MetricKey.from_proto(failure.metric_key),
                 failure.metric_threshold.HasField("change_threshold"))
                for per_slice in validation.metric_validations_per_slice
                for failure in per_slice.failures}
    all_slices = candidate.get_metrics_for_all_slices()
    checks = []
    thresholds = metric_specs.metric_thresholds_from_metrics_specs(
        config.metrics_specs, eval_config=config)
    for key, slices_and_thresholds in thresholds.items():
        if key.model_name != candidate_name:  # TFMA does not check the baseline's
            continue
        for slice_spec, threshold in slices_and_thresholds:
            is_change = isinstance(threshold, tfma.GenericChangeThreshold)
            for slice_key, metrics in _in_slice_order(all_slices):
                if slice_spec is not None and not slicer_lib.SingleSliceSpec(
                        spec=slice_spec).is_slice_applicable(slice_key):
                    continue
                name = key.name + (DIFF_SUFFIX if key.is_diff else "")
                checks.append(ThresholdCheck(
                    metric=key.name,
                    slice=slice_name(slice_key),
                    kind="change" if is_change else "value",
                    value=_double(metrics[name]) if name in metrics else None,
                    bound=_bound(threshold),
                    passed=(slice_key, key, is_change) not in failures,
                ))
    return checks


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


def _slice_counts(result) -> dict[str, dict[str, float]]:
    """Per slice: positives, negatives and predicted positives (at DECISION_THRESHOLD),
    from the slice's confusion matrices (TFMA's JSON leaves zero counts out)."""
    counts = {}
    for slice_key, plots in result.plots or []:
        matrices = plots[""][""].get("confusionMatrixAtThresholds", {}).get("matrices")
        if not matrices:
            continue
        matrix = min(matrices, key=lambda m: abs(m.get("threshold", 0.0) - DECISION_THRESHOLD))
        true_positives, false_positives, true_negatives, false_negatives = (
            float(matrix.get(name, 0.0)) for name in
            ("truePositives", "falsePositives", "trueNegatives", "falseNegatives"))
        counts[slice_name(slice_key)] = {
            "positives": true_positives + false_negatives,
            "negatives": true_negatives + false_positives,
            "predicted_positives": true_positives + false_positives,
        }
    return counts


def _in_slice_order(by_slice: dict) -> list:
    """Overall first, then by feature and value, as a reader scans them."""
    return sorted(by_slice.items(), key=lambda item: (len(item[0]), slice_name(item[0])))


def _bound(threshold) -> str:
    if isinstance(threshold, tfma.GenericValueThreshold):
        bounds = []
        if threshold.HasField("lower_bound"):
            bounds.append(f">= {threshold.lower_bound.value:g}")
        if threshold.HasField("upper_bound"):
            bounds.append(f"<= {threshold.upper_bound.value:g}")
        return " and ".join(bounds)
    comparison = (">=" if threshold.direction == tfma.MetricDirection.HIGHER_IS_BETTER
                  else "<=")
    bounds = []
    if threshold.HasField("absolute"):
        bounds.append(f"change {comparison} {threshold.absolute.value:g}")
    if threshold.HasField("relative"):
        bounds.append(f"relative change {comparison} {threshold.relative.value:g}")
    return " and ".join(bounds)


def _overall_plots(result) -> dict:
    for slice_key, plots in result.plots or []:
        if not slice_key:
            return plots[""][""]
    return {}


def _doubles(metrics: dict) -> dict[str, float | None]:
    """TFMA's {"name": {"doubleValue": v}} -> {"name": v}, NaN as None (JSON has no NaN)."""
    return {name: _double(value) for name, value in metrics.items() if "doubleValue" in value}


def _double(value: dict) -> float | None:
    number = float(value["doubleValue"])
    return None if math.isnan(number) else number


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
