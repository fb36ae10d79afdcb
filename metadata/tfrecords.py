"""The records of a TFRecord file, read without TensorFlow: uncompressed (TFMA's result
files, TensorBoard's event files) or, named *.gz, gzipped (TFX's examples)."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Iterator


def read_records(path: str | Path) -> Iterator[bytes]:
    """A TFRecord is its length (8 bytes, little-endian), a checksum of it (4 bytes), the
    data and a checksum of that (4 bytes). The checksums are not checked: the files read
    here are complete once their writer closed or renamed them."""
    with (gzip.open(path, "rb") if str(path).endswith(".gz") else Path(path).open("rb")) as file:
        while header := file.read(12):
            (length,) = struct.unpack("<Q", header[:8])
            yield file.read(length)
            file.read(4)


def records_in(path: str | Path) -> int:
    return sum(1 for _ in read_records(path))
