"""The candidate model's prediction for each eval example, as the Evaluator writes them
beside TFMA's results (components/evaluator.py) and the report reads them.

One JSON object a line, in `eval_predictions.jsonl` of the evaluation's folder. Only
the mistakes carry their encoded image (base64): the report shows no other, and the file
stays small at any size of the eval split.
"""
from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Iterable

FILE_NAME = "eval_predictions.jsonl"


@dataclasses.dataclass(frozen=True)
class Prediction:
    file_name: str
    true_label: str
    predicted_label: str
    confidence: float  # the probability of the predicted label
    image: bytes | None  # the encoded image, as ingested: kept for the mistakes only

    @property
    def wrong(self) -> bool:
        return self.predicted_label != self.true_label


def to_lines(predictions: Iterable[Prediction]) -> str:
    return "".join(json.dumps({
        **dataclasses.asdict(prediction),
        "image": base64.b64encode(prediction.image).decode() if prediction.image else None,
    }) + "\n" for prediction in predictions)


def read_predictions(evaluation_uri: str) -> list[Prediction]:
    path = Path(evaluation_uri) / FILE_NAME
    if not path.exists():
        raise LookupError(f"{evaluation_uri} holds no {FILE_NAME}: the Evaluator that wrote "
                          "it predates the per-example predictions; rerun the pipeline.")
    predictions = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            fields = json.loads(line)
            image = fields.pop("image")
            predictions.append(Prediction(**fields,
                                          image=base64.b64decode(image) if image else None))
    return predictions
