"""What ingestion accepts as an image file, and why it rejects or ignores the others.

The decoder that decides is the one Transform uses later (`tf.io.decode_image`: JPEG,
PNG, GIF, BMP), so a file that ingestion writes always transforms.
"""
import dataclasses
import io
import os
import re
import warnings

import tensorflow as tf
from PIL import Image, ImageOps

# Files that operating systems and photo tools leave in folders: never images.
_SYSTEM_FILE_NAMES = frozenset({"Thumbs.db", "desktop.ini", "Icon\r"})
_EXIF_ORIENTATION_TAG = 0x0112


class RejectedFile(Exception):
    """A file that is not ingested; the message is the reason given in the report."""


@dataclasses.dataclass(frozen=True)
class ImageFile:
    data: bytes  # what the example stores: the file's bytes, or the upright re-encoding
    height: int
    width: int


def is_ignored(file_name: str) -> bool:
    """Hidden files (.DS_Store, ._resource forks) and known system files."""
    return file_name.startswith(".") or file_name in _SYSTEM_FILE_NAMES


def read_image(path: str, data_root: str, max_image_pixels: int) -> ImageFile:
    """The image at `path`, checked and decoded; raises RejectedFile with the reason."""
    _check_inside(path, data_root)
    with tf.io.gfile.GFile(path, "rb") as file:
        data = file.read()
    if not data:
        raise RejectedFile("empty file (0 bytes)")
    data = _upright(data, max_image_pixels)
    try:
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        raise RejectedFile(f"not decodable: {describe_error(error)}") from None
    return ImageFile(data=data, height=int(image.shape[0]), width=int(image.shape[1]))


def _check_inside(path: str, data_root: str) -> None:
    """Refuses links that lead out of the data root (local files only)."""
    if "://" in data_root:
        return
    real_root = os.path.realpath(data_root)
    if os.path.commonpath([os.path.realpath(path), real_root]) != real_root:
        raise RejectedFile(f"symbolic link to {os.path.realpath(path)}, outside the data root")


def _upright(data: bytes, max_image_pixels: int) -> bytes:
    """Checks the size the header claims before anything is decoded, then applies EXIF
    orientation (re-encoded losslessly as PNG) so that models see photos upright."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError as error:  # Pillow's own, larger limit
        raise RejectedFile(f"{error} Above max_image_pixels={max_image_pixels}: "
                           "not decoded") from None
    except Exception:  # noqa: BLE001 - Pillow can't parse it; TF's decoder has the last word
        return data
    width, height = image.size
    if width * height > max_image_pixels:
        raise RejectedFile(f"claims {width}x{height} = {width * height} pixels, above "
                           f"max_image_pixels={max_image_pixels}: not decoded")
    if image.getexif().get(_EXIF_ORIENTATION_TAG, 1) == 1:
        return data
    buffer = io.BytesIO()
    try:
        ImageOps.exif_transpose(image).save(buffer, format="PNG")
    except Exception:  # noqa: BLE001 - e.g. truncated pixel data: TF's decoder will say
        return data
    return buffer.getvalue()


def describe_error(error: Exception) -> str:
    """The first line of an error's message, without TF's kernel decorations."""
    message = getattr(error, "message", None) or str(error)
    message = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", message)
    message = re.sub(r"\s*\[Op:\w+\]\s*$", "", message).strip()
    return message.splitlines()[0] if message else type(error).__name__
