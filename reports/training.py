"""Training curves from the Trainer's TensorBoard logs (Keras' per-epoch scalars), read
with TensorBoard's protos, without TensorFlow."""
from __future__ import annotations

import struct
from pathlib import Path

from tensorboard.compat.proto import event_pb2, types_pb2

from metadata.tfrecords import read_records

# Keras' TensorBoard callback writes one folder per phase and "epoch_<metric>" scalars.
PHASES = ("train", "validation")
_EPOCH_PREFIX = "epoch_"

# {phase: {metric: [(epoch, value), ...]}}
Curves = dict[str, dict[str, list[tuple[int, float]]]]


def read_training_curves(model_run_uri: str) -> Curves:
    curves: Curves = {}
    for phase in PHASES:
        for path in sorted(Path(model_run_uri, phase).glob("events.out.*")):
            for record in read_records(path):
                event = event_pb2.Event.FromString(record)
                for value in event.summary.value:
                    if value.tag.startswith(_EPOCH_PREFIX):
                        metric = value.tag.removeprefix(_EPOCH_PREFIX)
                        curves.setdefault(phase, {}).setdefault(metric, []).append(
                            (event.step, _scalar(value.tensor)))
    return curves


def _scalar(tensor) -> float:
    """A scalar float32 TensorProto's value (Keras writes its scalars as float32)."""
    if tensor.dtype != types_pb2.DT_FLOAT:
        raise ValueError(f"Expected a float32 scalar, got dtype {tensor.dtype}")
    if tensor.float_val:
        return float(tensor.float_val[0])
    (value,) = struct.unpack("<f", tensor.tensor_content)
    return float(value)
