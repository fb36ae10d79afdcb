"""`cats-dogs-predict IMAGE...` (or `make predict IMAGES="a.jpg b.png"`): classifies image
files with the newest pushed model, through the signature TF Serving serves by default.

Prints, per file, the label and its probability, or why the file got no prediction. The
model is the highest version in <output_dir>/serving_model/<pipeline_name>/ (settings
OUTPUT_DIR, PIPELINE_NAME... come from the environment, as for the pipeline), or --model.
Exits 1 if any file got no prediction.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import tensorflow as tf

from components.atomic_pusher import is_version
from models import features
from pipeline.config import PipelineConfig


def newest_version(serving_model_dir: str) -> str:
    """The folder of the highest version TF Serving would serve from `serving_model_dir`."""
    versions = [name for name in (os.listdir(serving_model_dir)
                                  if os.path.isdir(serving_model_dir) else [])
                if is_version(name)]
    if not versions:
        raise LookupError(f"no pushed model in {serving_model_dir}: a blessed run of "
                          "make pipeline pushes one")
    return os.path.join(serving_model_dir, max(versions, key=int))


def classify(model_dir: str, paths: list[str]) -> list[str]:
    """One line per file: `PATH: LABEL PROBABILITY`, or `PATH: error: WHY`."""
    signature = tf.saved_model.load(model_dir).signatures[features.IMAGE_BYTES_SIGNATURE]
    lines = []
    # One request per file: a request's decode budget (max_request_pixels) bounds one file.
    for path in paths:
        try:
            image = Path(path).read_bytes()
        except OSError as error:
            lines.append(f"{path}: error: {error.strerror or error}")
            continue
        outputs = signature(**{features.IMAGE_BYTES_INPUT: tf.constant([image])})
        error = outputs[features.ERROR_KEY][0].numpy().decode()
        if error:
            lines.append(f"{path}: error: {error}")
        else:
            label = outputs[features.PREDICTED_LABEL_KEY][0].numpy().decode()
            probability = float(tf.reduce_max(outputs[features.PROBABILITIES_KEY][0]))
            lines.append(f"{path}: {label} {probability:.3f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cats-dogs-predict", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="an image file")
    parser.add_argument("--model", help="a model version folder (default: the newest pushed)")
    arguments = parser.parse_args(argv)
    try:
        model_dir = arguments.model or newest_version(PipelineConfig.from_env().serving_model_dir)
    except LookupError as error:
        print(f"No prediction: {error}", file=sys.stderr)
        return 1
    print(f"Model: {model_dir}", flush=True)
    lines = classify(model_dir, arguments.images)
    print("\n".join(lines))
    return 1 if any(": error: " in line for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main())
