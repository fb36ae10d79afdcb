"""One image file -> its tf.Example, or the reason it was not written: the per-file work of
ImageExampleGen's Beam pipeline.

Kept apart from the component, free of TFX imports: every Beam worker process imports
this module to run the DoFn, and importing TFX would add seconds to each worker's start.
"""
import json
from typing import Sequence

import apache_beam as beam
import tensorflow as tf

from components.image_files import (
    ImageFile, RejectedFile, describe_error, ignore_reason, read_image)
from models.features import (
    FILE_NAME_KEY,
    HEIGHT_KEY,
    IMAGE_KEY,
    LABEL_KEY,
    LABEL_NAME_KEY,
    ORIENTATION_KEY,
    SIZE_BUCKET_KEY,
    SIZE_BUCKETS,
    SQUARE_TOLERANCE,
    WIDTH_KEY,
)

# The DoFn's side output: one JSON line per file, for the ingestion report.
OUTCOMES_TAG = "outcomes"


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int64_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def size_bucket(height: int, width: int) -> str:
    """The SIZE_BUCKETS name for an image's longer side."""
    longer_side = max(height, width)
    return next(name for name, bound in SIZE_BUCKETS if bound is None or longer_side < bound)


def orientation(height: int, width: int) -> str:
    if abs(width - height) <= SQUARE_TOLERANCE * max(height, width):
        return "square"
    return "landscape" if width > height else "portrait"


def image_example(image: ImageFile, label: int, class_name: str, file_name: str
                  ) -> tf.train.Example:
    """The tf.Example of one accepted image file."""
    return tf.train.Example(features=tf.train.Features(feature={
        IMAGE_KEY: _bytes_feature(image.data),
        LABEL_KEY: _int64_feature(label),
        LABEL_NAME_KEY: _bytes_feature(class_name.encode("utf-8")),
        FILE_NAME_KEY: _bytes_feature(file_name.encode("utf-8")),
        HEIGHT_KEY: _int64_feature(image.height),
        WIDTH_KEY: _int64_feature(image.width),
        SIZE_BUCKET_KEY: _bytes_feature(size_bucket(image.height, image.width).encode("utf-8")),
        ORIENTATION_KEY: _bytes_feature(orientation(image.height, image.width).encode("utf-8")),
    }))


class ImageToExampleDoFn(beam.DoFn):
    """One file path -> a serialized tf.Example (main output) and an outcome record (side
    output). Serialized here, in the worker that built it, so that writing needs no
    other step."""

    def __init__(self, class_names: Sequence[str], data_root: str, max_image_pixels: int,
                 max_file_bytes: int):
        self._class_index = {name: i for i, name in enumerate(class_names)}
        self._data_root = data_root
        self._max_image_pixels = max_image_pixels
        self._max_file_bytes = max_file_bytes

    def process(self, path: str):
        parts = path.rstrip("/").split("/")
        class_name, rel = parts[-2], "/".join(parts[-2:])
        outcome = {"file": rel, "class": class_name, "outcome": "ignored"}
        if class_name not in self._class_index:
            outcome["reason"] = "not in a class folder"
        elif reason := ignore_reason(path):
            outcome["reason"] = reason
        else:
            try:
                image = read_image(path, self._data_root, self._max_image_pixels,
                                   self._max_file_bytes)
            except (RejectedFile, OSError, tf.errors.OpError) as error:
                outcome.update(outcome="rejected", reason=describe_error(error))
            else:
                outcome["outcome"] = "written"
                yield image_example(
                    image, self._class_index[class_name], class_name, rel).SerializeToString()
        yield beam.pvalue.TaggedOutput(OUTCOMES_TAG, json.dumps(outcome))
