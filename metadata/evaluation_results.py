"""TFMA's results, read from the files the Evaluator wrote, with protobuf alone.

TFMA writes its metrics (`metrics*.tfrecord`: one `MetricsForSlice` per slice) and its
threshold checks (`validations*.tfrecord`: one `ValidationResult`) as TFRecords of its
protos. TFMA's own proto classes come only with its package, which imports TensorFlow
(seconds), so the messages are declared here: the fields read below, under TFMA's field
numbers (tensorflow_model_analysis/proto/metrics_for_slice.proto and
validation_result.proto); protobuf skips the others.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Iterator

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

# {message: {field: (TFMA's field number, type)}}; a type named here is a message, and
# "repeated T" a list of T.
_TFMA_MESSAGES = {
    # A message whose presence alone matters here: a slice's feature values, a cross
    # slice, a metric's sub key (class id, top k) or aggregation type.
    "Present": {},
    "SliceKey": {"single_slice_keys": (1, "repeated Present")},
    "MetricKey": {"name": (1, "string"), "output_name": (2, "string"), "sub_key": (3, "Present"),
                  "model_name": (4, "string"), "is_diff": (5, "bool"),
                  "aggregation_type": (6, "Present")},
    "DoubleValue": {"value": (1, "double")},  # google.protobuf.DoubleValue
    "MetricValue": {"double_value": (1, "DoubleValue")},
    "MetricKeyAndValue": {"key": (1, "MetricKey"), "value": (2, "MetricValue")},
    "MetricsForSlice": {"slice_key": (1, "SliceKey"), "cross_slice_key": (3, "Present"),
                        "metric_keys_and_values": (51, "repeated MetricKeyAndValue")},
    "ValidationFailure": {"metric_key": (1, "MetricKey"), "message": (4, "string")},
    "MetricsValidationForSlice": {"failures": (3, "repeated ValidationFailure")},
    "ValidationResult": {
        "metric_validations_per_slice": (2, "repeated MetricsValidationForSlice")},
}
_PACKAGE = "tfma_results"


def _message_classes() -> dict[str, type]:
    """Protobuf classes for _TFMA_MESSAGES, in a pool of their own: TFMA's real messages,
    when a process imports TFMA too, keep theirs."""
    file = descriptor_pb2.FileDescriptorProto(name=f"{_PACKAGE}.proto", package=_PACKAGE,
                                              syntax="proto3")
    field_types = descriptor_pb2.FieldDescriptorProto
    for message_name, fields in _TFMA_MESSAGES.items():
        message = file.message_type.add(name=message_name)
        for field_name, (number, type_name) in fields.items():
            repeated, _, type_name = type_name.rpartition(" ")
            field = message.field.add(
                name=field_name, number=number,
                label=field_types.LABEL_REPEATED if repeated else field_types.LABEL_OPTIONAL)
            if type_name in _TFMA_MESSAGES:
                field.type, field.type_name = field_types.TYPE_MESSAGE, f".{_PACKAGE}.{type_name}"
            else:
                field.type = field_types.Type.Value(f"TYPE_{type_name.upper()}")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
            for name in _TFMA_MESSAGES}


_CLASSES = _message_classes()
MetricsForSlice = _CLASSES["MetricsForSlice"]
ValidationResult = _CLASSES["ValidationResult"]


def overall_metrics(evaluation_uri: str) -> dict[str, float]:
    """The candidate model's metrics on the whole eval split, by TFMA's metric name (what
    `tfma.load_eval_result(uri).get_metrics_for_slice()` holds as doubles)."""
    candidate = _candidate_model_name(evaluation_uri)
    metrics = {}
    for record in _records(evaluation_uri, "metrics"):
        metrics_for_slice = MetricsForSlice.FromString(record)
        if (metrics_for_slice.HasField("cross_slice_key")
                or metrics_for_slice.slice_key.single_slice_keys):
            continue  # a slice of the data, not all of it
        for key_and_value in metrics_for_slice.metric_keys_and_values:
            key, value = key_and_value.key, key_and_value.value
            # "" is a metric of no model in particular, such as the example count.
            if (key.model_name in (candidate, "") and not key.output_name and not key.is_diff
                    and not key.HasField("sub_key") and not key.HasField("aggregation_type")
                    and value.HasField("double_value")):
                metrics[key.name] = value.double_value.value
    return metrics


def failed_thresholds(evaluation_uri: str) -> list[str]:
    """TFMA's message for each threshold the candidate did not meet, after its metric."""
    [record] = _records(evaluation_uri, "validations")
    validation = ValidationResult.FromString(record)
    return [f"{failure.metric_key.name}: {failure.message}"
            for per_slice in validation.metric_validations_per_slice
            for failure in per_slice.failures]


def _candidate_model_name(evaluation_uri: str) -> str:
    """The name TFMA gave the candidate: "candidate" beside a baseline, else ""."""
    config = json.loads(Path(evaluation_uri, "eval_config.json").read_text())
    [candidate] = [spec for spec in config["evalConfig"]["modelSpecs"]
                   if not spec.get("isBaseline")]
    return candidate.get("name", "")


def _records(evaluation_uri: str, name: str) -> Iterator[bytes]:
    """The records of the TFRecord files TFMA wrote as `name`, in shard order.

    A TFRecord is its length (8 bytes, little-endian), a checksum of it (4 bytes), the
    data and a checksum of that (4 bytes). The checksums are not checked: Beam writes each
    file under a temporary name and renames it when complete."""
    for path in sorted(Path(evaluation_uri).glob(f"{name}*.tfrecord")):
        with path.open("rb") as file:
            while header := file.read(12):
                (length,) = struct.unpack("<Q", header[:8])
                yield file.read(length)
                file.read(4)
