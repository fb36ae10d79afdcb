"""TFMA's results, read from the files the Evaluator wrote, without importing TFMA's package.

TFMA writes its eval config (`eval_config.json`), its metrics and plots
(`metrics*.tfrecord`, `plots*.tfrecord`: one `MetricsForSlice` / `PlotsForSlice` per
slice) and its threshold checks (`validations*.tfrecord`: one `ValidationResult`), as
TFRecords of its protos. They are read here with TFMA's own generated proto modules,
imported without the package's `__init__`, which imports TensorFlow and Beam (seconds).
Values are read as TFMA's own loaders give them (`tfma.load_eval_result`): slices as
tuples of (feature, value), metrics and plots as the JSON dicts of their protos.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterator

from google.protobuf import json_format

from metadata.tfrecords import read_records

_TFMA_PACKAGE = "tensorflow_model_analysis"
# TFMA names the candidate-minus-baseline value of metric m "m_diff".
DIFF_SUFFIX = "_diff"

SliceKey = tuple  # TFMA's: () overall, or ((feature, value), ...)


def _import_tfma_protos(*modules: str) -> list[ModuleType]:
    """TFMA's generated `proto/<module>.py` modules, imported under their own names
    without running TFMA's `__init__` (where TFMA is imported already: its own).

    While they load, sys.modules holds the package as a module made from its spec but not
    run, so that the import system finds the package's files and the proto modules'
    imports of each other resolve. Every TFMA name added is taken out again afterwards,
    so that a later `import tensorflow_model_analysis` runs the package in full; its
    proto modules then give the same classes as these (protobuf keeps one class per
    message type)."""
    names_before = set(sys.modules)
    if _TFMA_PACKAGE not in sys.modules:
        sys.modules[_TFMA_PACKAGE] = importlib.util.module_from_spec(
            importlib.util.find_spec(_TFMA_PACKAGE))
    try:
        return [importlib.import_module(f"{_TFMA_PACKAGE}.proto.{module}") for module in modules]
    finally:
        for name in set(sys.modules) - names_before:
            if name.partition(".")[0] == _TFMA_PACKAGE:
                del sys.modules[name]


_config_pb2, _metrics_for_slice_pb2, _validation_result_pb2 = _import_tfma_protos(
    "config_pb2", "metrics_for_slice_pb2", "validation_result_pb2")
EvalConfig = _config_pb2.EvalConfig
MetricsForSlice = _metrics_for_slice_pb2.MetricsForSlice
PlotsForSlice = _metrics_for_slice_pb2.PlotsForSlice
ValidationResult = _validation_result_pb2.ValidationResult


def eval_config(evaluation_uri: str) -> EvalConfig:
    """The EvalConfig the Evaluator ran with (its model specs carry the model names)."""
    written = json.loads(Path(evaluation_uri, "eval_config.json").read_text())
    return json_format.ParseDict(written["evalConfig"], EvalConfig(), ignore_unknown_fields=True)


def model_names(config: EvalConfig) -> tuple[str, str | None]:
    """(the candidate's name, the baseline's or None): "candidate" and "baseline" beside a
    baseline, "" for a lone candidate."""
    [candidate] = [spec.name for spec in config.model_specs if not spec.is_baseline]
    baselines = [spec.name for spec in config.model_specs if spec.is_baseline]
    return candidate, (baselines[0] if baselines else None)


def metrics_by_slice(evaluation_uri: str, model_name: str) -> dict[SliceKey, dict[str, dict]]:
    """{slice: {metric name: value as JSON, e.g. {"doubleValue": 0.8}}} of one model, with
    the metrics of no model in particular (the example count); a candidate's differences
    to the baseline as "<name>_diff". Per-class sub keys, aggregations, other outputs and
    cross slices, which this pipeline does not configure, are left out."""
    by_slice = {}
    for record in _records(evaluation_uri, "metrics"):
        metrics_for_slice = MetricsForSlice.FromString(record)
        if metrics_for_slice.HasField("cross_slice_key"):
            continue
        metrics = by_slice.setdefault(slice_key_of(metrics_for_slice.slice_key), {})
        for key_and_value in metrics_for_slice.metric_keys_and_values:
            key = key_and_value.key
            if (key.model_name in (model_name, "") and not key.output_name
                    and not key.HasField("sub_key") and not key.HasField("aggregation_type")):
                name = key.name + (DIFF_SUFFIX if key.is_diff else "")
                metrics[name] = json_format.MessageToDict(key_and_value.value)
    return by_slice


def plots_by_slice(evaluation_uri: str, model_name: str) -> dict[SliceKey, dict]:
    """{slice: TFMA's plots of one model as JSON, by plot name (e.g.
    "confusionMatrixAtThresholds")}; only slices with plots."""
    by_slice = {}
    for record in _records(evaluation_uri, "plots"):
        plots_for_slice = PlotsForSlice.FromString(record)
        for key_and_value in plots_for_slice.plot_keys_and_values:
            key = key_and_value.key
            if key.model_name == model_name and not key.output_name and not key.HasField("sub_key"):
                by_slice[slice_key_of(plots_for_slice.slice_key)] = json_format.MessageToDict(
                    key_and_value.value)
    return by_slice


def validation_result(evaluation_uri: str) -> ValidationResult:
    [record] = _records(evaluation_uri, "validations")
    return ValidationResult.FromString(record)


def overall_metrics(evaluation_uri: str) -> dict[str, float]:
    """The candidate model's metrics on the whole eval split, by TFMA's metric name (what
    `tfma.load_eval_result(uri).get_metrics_for_slice()` holds as doubles, but diffs)."""
    candidate, _ = model_names(eval_config(evaluation_uri))
    overall = metrics_by_slice(evaluation_uri, candidate).get((), {})
    # float(): what TFMA could not compute (precision when nothing is predicted positive)
    # is NaN, which protobuf's JSON writes as the string "NaN".
    return {name: float(value["doubleValue"]) for name, value in overall.items()
            if "doubleValue" in value and not name.endswith(DIFF_SUFFIX)}


def failed_thresholds(evaluation_uri: str) -> list[str]:
    """Each threshold the candidate did not meet: its metric, value and bound (TFMA's own
    message is empty for value and change thresholds)."""
    return [_failure_text(failure)
            for per_slice in validation_result(evaluation_uri).metric_validations_per_slice
            for failure in per_slice.failures]


def _failure_text(failure) -> str:
    name, value = failure.metric_key.name, failure.metric_value.double_value.value
    threshold = failure.metric_threshold
    if failure.metric_key.is_diff:
        allowed = threshold.change_threshold.absolute.value
        text = f"{name} changed by {value:+.3f} against the baseline (allowed: {allowed:+.3f})"
    elif threshold.value_threshold.HasField("lower_bound"):
        text = (f"{name} {value:.3f} is below the lower bound "
                f"{threshold.value_threshold.lower_bound.value:g}")
    else:
        text = f"{name} {value:.3f}"
    return f"{text}: {failure.message}" if failure.message else text


def slice_key_of(slice_key) -> SliceKey:
    """A SliceKey proto as TFMA's loaders give it: byte values as text."""
    key = []
    for single in slice_key.single_slice_keys:
        kind = single.WhichOneof("kind")
        value = getattr(single, kind)
        key.append((single.column, value.decode("utf-8") if kind == "bytes_value" else value))
    return tuple(key)


def _records(evaluation_uri: str, name: str) -> Iterator[bytes]:
    """The records of the files TFMA wrote as `name`, in shard order. (Beam writes each
    file under a temporary name and renames it when complete.)"""
    for path in sorted(Path(evaluation_uri).glob(f"{name}*.tfrecord")):
        yield from read_records(path)
