"""Ingestion's verdict on each awkward or broken file, and what Transform makes of it."""
import os
import resource

import pytest
import tensorflow as tf

from components.image_files import RejectedFile, is_ignored, read_image
from models.preprocessing import decode_and_resize
from tests.bad_inputs import (
    IGNORED_FILE_NAMES, accepted_files, png_claiming_size, rejected_files)

MAX_PIXELS = 50_000_000


@pytest.mark.parametrize("name", sorted(accepted_files()))
def test_accepted_files_decode_upright_and_transform_to_the_right_shape(tmp_path, name):
    data, (height, width) = accepted_files()[name]
    path = tmp_path / name
    path.write_bytes(data)
    image = read_image(str(path), str(tmp_path), MAX_PIXELS)
    assert (image.height, image.width) == (height, width)
    assert decode_and_resize(tf.constant(image.data), 16).shape == (16, 16, 3)


@pytest.mark.parametrize("name", sorted(rejected_files()))
def test_rejected_files_say_why(tmp_path, name):
    data, reason = rejected_files()[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(RejectedFile, match=reason):
        read_image(str(path), str(tmp_path), MAX_PIXELS)


@pytest.mark.parametrize("side, reason", [
    (12_000, r"claims 12000x12000 = 144000000 pixels, above max_image_pixels=50000000"),
    (100_000, r"10000000000 pixels.*not decoded"),  # past Pillow's own limit too
])
def test_a_decompression_bomb_is_refused_without_decoding(tmp_path, side, reason):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming_size(side, side))
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(RejectedFile, match=reason):
        read_image(str(path), str(tmp_path), MAX_PIXELS)
    # Decoding would need side * side * 3 bytes: 432 MB and 30 GB.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 100_000  # KiB


def test_a_symlink_leading_outside_the_data_root_is_refused(tmp_path):
    outside = tmp_path / "elsewhere.jpg"
    outside.write_bytes(accepted_files()["one_pixel.jpg"][0])
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "link.jpg")
    with pytest.raises(RejectedFile, match="outside the data root"):
        read_image(str(root / "link.jpg"), str(root), MAX_PIXELS)


def test_a_symlink_inside_the_data_root_is_followed(tmp_path):
    (tmp_path / "real.jpg").write_bytes(accepted_files()["one_pixel.jpg"][0])
    os.symlink(tmp_path / "real.jpg", tmp_path / "link.jpg")
    assert read_image(str(tmp_path / "link.jpg"), str(tmp_path), MAX_PIXELS).height == 1


def test_hidden_and_system_files_are_ignored():
    assert all(is_ignored(name) for name in IGNORED_FILE_NAMES)
    assert not any(is_ignored(name) for name in accepted_files())
