"""The records of an uncompressed TFRecord file, read without TensorFlow (TFMA's result
files and TensorBoard's event files are such files)."""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Iterator


def read_records(path: str | Path) -> Iterator[bytes]:
    """A TFRecord is its length (8 bytes, little-endian), a checksum of it (4 bytes), the
    data and a checksum of that (4 bytes). The checksums are not checked: the files read
    here are complete once their writer closed or renamed them."""
    with Path(path).open("rb") as file:
        while header := file.read(12):
            (length,) = struct.unpack("<Q", header[:8])
            yield file.read(length)
            file.read(4)
