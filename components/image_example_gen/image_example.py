"""The tf.Example of one accepted image: its bytes, label, label name, file name, size,
and the two slicing features derived from its size (see models/features.py)."""
import tensorflow as tf

from components.image_example_gen.image_file import ImageFile
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
