"""Per-example predictions on the eval split, from the candidate SavedModel's
tf.Example signature (the one TFMA feeds), for the gallery of confident mistakes."""
from __future__ import annotations

import dataclasses
import os

import tensorflow as tf
from tfx.utils import path_utils

from models import features

_BATCH_SIZE = 64


@dataclasses.dataclass(frozen=True)
class Prediction:
    file_name: str
    true_label: str
    predicted_label: str
    confidence: float  # the probability of the predicted label
    image: bytes  # the encoded image, as ingested

    @property
    def wrong(self) -> bool:
        return self.predicted_label != self.true_label


def predict_eval_split(model_uri: str, examples_uri: str) -> list[Prediction]:
    model = tf.saved_model.load(path_utils.serving_model_path(model_uri))
    signature = model.signatures[features.TF_EXAMPLE_SIGNATURE]
    files = tf.io.gfile.glob(os.path.join(examples_uri, "Split-eval", "*"))
    records = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(_BATCH_SIZE)
    predictions = []
    for batch in records:
        outputs = signature(examples=batch)
        for serialized, probabilities, predicted in zip(
                batch.numpy(), outputs[features.PROBABILITIES_KEY].numpy(),
                outputs[features.PREDICTED_LABEL_KEY].numpy()):
            example = tf.train.Example.FromString(serialized).features.feature
            predictions.append(Prediction(
                file_name=example[features.FILE_NAME_KEY].bytes_list.value[0].decode(),
                true_label=example[features.LABEL_NAME_KEY].bytes_list.value[0].decode(),
                predicted_label=predicted.decode(),
                confidence=float(probabilities.max()),
                image=example[features.IMAGE_KEY].bytes_list.value[0],
            ))
    return predictions


def most_confidently_wrong(predictions: list[Prediction], count: int) -> list[Prediction]:
    mistakes = [prediction for prediction in predictions if prediction.wrong]
    return sorted(mistakes, key=lambda prediction: -prediction.confidence)[:count]
