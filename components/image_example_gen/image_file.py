"""Reading and checking one image file: accepted as an ImageFile, or rejected with the
reason the ingestion report gives.

The decoder that decides is the one Transform uses later (`tf.io.decode_image`: JPEG,
PNG, GIF, BMP), so a file that ingestion writes always transforms. Headers are read, and
photos turned upright, by models/image_header.py, as the serving signature does. Which
files are not even read (hidden, system, not regular files) is layout.py's rule.
"""
import dataclasses
import hashlib
import os
import re

import tensorflow as tf

from components.image_example_gen import layout
from models import image_header


class RejectedFile(Exception):
    """A file read and not ingested; the message is the reason given in the report."""


@dataclasses.dataclass(frozen=True)
class ImageFile:
    # What the example stores: the file's bytes as read, or, for a photo with an EXIF
    # orientation, its upright PNG re-encoding.
    data: bytes
    height: int  # of the upright image, as Transform decodes it
    width: int
    # Of the file's bytes as read: the same file in two splits is a leak (report.py).
    content_sha256: str


def read_image(path: str, data_root: str, max_image_pixels: int,
               max_file_bytes: int) -> ImageFile:
    """The image at `path`, checked and decoded; raises RejectedFile with the reason."""
    _check_inside(path, data_root)
    data = _read_at_most(path, max_file_bytes + 1)  # never more than the limit into memory
    if len(data) > max_file_bytes:
        raise RejectedFile(f"{tf.io.gfile.stat(path).length} bytes, above "
                           f"max_file_bytes={max_file_bytes}: not read")
    if not data:
        raise RejectedFile("empty file (0 bytes)")
    content_sha256 = hashlib.sha256(data).hexdigest()
    try:
        format_index, size = _read_header(data)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        raise RejectedFile(image_header.ERROR_HEADER) from None
    if int(format_index) < 0:
        raise RejectedFile(image_header.ERROR_FORMAT)
    width, height, frames = size.numpy()
    pixels = int(width) * int(height) * int(frames)
    if pixels > max_image_pixels:
        of_frames = f" x {frames} frames" if frames > 1 else ""
        raise RejectedFile(f"claims {width}x{height}{of_frames} = {pixels} pixels, above "
                           f"max_image_pixels={max_image_pixels}: not decoded")
    try:
        if image_header.may_have_exif(data):
            data = image_header.upright(data).numpy()
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        raise RejectedFile(f"not decodable: {describe_error(error)}") from None
    return ImageFile(data=data, height=int(image.shape[0]), width=int(image.shape[1]),
                     content_sha256=content_sha256)


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def _read_header(data: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(format index, [width, height, frames]) in one graph call; the size is zeros for
    an unknown format, and the call fails when a known format's header is unreadable."""
    format_index = image_header.format_index(data)
    return format_index, tf.cond(format_index >= 0, lambda: image_header.decoded_size(data),
                                 lambda: tf.zeros([3], tf.int64))


def _read_at_most(path: str, limit: int) -> bytes:
    """Up to `limit` bytes of the file. A local file is checked on the descriptor it is
    read from, opened without blocking: one swapped for a named pipe or a device after
    the listing's check is rejected, and never blocks a worker."""
    if "://" in str(path):
        with tf.io.gfile.GFile(path, "rb") as file:
            return file.read(limit)
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
    with os.fdopen(descriptor, "rb") as file:
        reason = layout.not_regular_file_reason(os.fstat(descriptor).st_mode)
        if reason:
            raise RejectedFile(reason)
        return file.read(limit)


def _check_inside(path: str, data_root: str) -> None:
    """Refuses links that lead out of the data root (local files only)."""
    if "://" in data_root:
        return
    real_root = os.path.realpath(data_root)
    if os.path.commonpath([os.path.realpath(path), real_root]) != real_root:
        raise RejectedFile(f"symbolic link to {os.path.realpath(path)}, outside the data root")


def describe_error(error: Exception) -> str:
    """The first line of an error's message, without TF's kernel decorations."""
    message = getattr(error, "message", None) or str(error)
    message = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", message)
    message = re.sub(r"\s*\[Op:\w+\]\s*$", "", message).strip()
    return message.splitlines()[0] if message else type(error).__name__
