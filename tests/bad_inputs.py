"""A corpus of awkward and broken image files, made by the tests (no shipped binaries)."""
import io
import os
import struct
import zlib

import numpy as np
from PIL import Image

from tests.helpers import encode_image


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _rgb(width: int = 30, height: int = 20) -> Image.Image:
    return Image.fromarray(
        np.random.default_rng(width * height).integers(0, 256, (height, width, 3), np.uint8))


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels: a decompression bomb."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + chunk(b"IEND", b""))


def gif(width: int, height: int, frames: int = 1, screen: tuple[int, int] | None = None,
        signature: bytes = b"GIF89a") -> bytes:
    """A GIF of `frames` plain frames of width x height, whose header may claim another
    logical screen size and another signature (TF decodes any "GIF8..."; Pillow reads
    only GIF87a and GIF89a)."""
    images = [Image.new("RGB", (width, height), (40 * i % 256, 90, 0)) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:])
    data = bytearray(buffer.getvalue())
    data[:6] = signature
    if screen:
        data[6:10] = struct.pack("<HH", *screen)
    return bytes(data)


def jpeg_with_exif_orientation(width: int, height: int, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _save(_rgb(width, height), "JPEG", exif=exif.tobytes())


# name -> (bytes, expected (height, width) when ingested, or None when rejected)
def accepted_files() -> dict[str, tuple[bytes, tuple[int, int]]]:
    gray = Image.fromarray(np.full((20, 30), 128, np.uint8))
    sixteen_bit = Image.fromarray(np.arange(600, dtype=np.uint16).reshape(20, 30) * 90)
    return {
        "png_named.jpg": (encode_image(30, 20, fmt="PNG"), (20, 30)),
        "animated.gif": (_save(_rgb(), "GIF"), (20, 30)),
        "unusual_signature.gif": (gif(30, 20, signature=b"GIF80a"), (20, 30)),
        "bitmap.bmp": (_save(_rgb(), "BMP"), (20, 30)),
        "gray.jpg": (_save(gray, "JPEG"), (20, 30)),
        "cmyk.jpg": (_save(_rgb().convert("CMYK"), "JPEG"), (20, 30)),
        "sixteen_bit.png": (_save(sixteen_bit, "PNG"), (20, 30)),
        "alpha.png": (_save(_rgb().convert("RGBA"), "PNG"), (20, 30)),
        # Orientation 6: the camera was turned; upright, the 30x20 sensor image is 20 wide.
        "rotated_exif.jpg": (jpeg_with_exif_orientation(30, 20, orientation=6), (30, 20)),
        "one_pixel.jpg": (encode_image(1, 1), (1, 1)),
        "name with spaces é 猫.jpg": (encode_image(30, 20), (20, 30)),
    }


def rejected_files() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, a word the rejection reason must contain)."""
    return {
        "zero_bytes.jpg": (b"", "empty"),
        "truncated.jpg": (encode_image(60, 40)[:300], "unreadable image header"),
        "truncated_data.jpg": (encode_image(60, 40)[:700], "not decodable"),
        "random_bytes.jpg": (b"\x00" + os.urandom(3000), "not a JPEG, PNG, GIF or BMP image"),
        "text.jpg": (b"this is not an image\n" * 20, "not a JPEG, PNG, GIF or BMP image"),
        "modern.webp": (_save(_rgb(), "WEBP"), "not a JPEG, PNG, GIF or BMP image"),
        "bomb.png": (png_claiming_size(100_000, 100_000), "max_image_pixels"),
    }


IGNORED_FILE_NAMES = (".DS_Store", "Thumbs.db", "._cat.1.jpg")
