"""Ingestion's verdict on each awkward or broken file, and what Transform makes of it."""
import os
import resource
import threading

import pytest
import tensorflow as tf

from components.image_example_gen.beam_transform import ImageToExampleDoFn
from components.image_example_gen.image_file import RejectedFile, read_image
from components.image_example_gen.layout import ignore_reason, is_ignored
from models.preprocessing import decode_and_resize
from tests.bad_inputs import (
    IGNORED_FILE_NAMES, accepted_files, gif, png_claiming_size, rejected_files)
from tests.helpers import encode_image

MAX_PIXELS = 50_000_000
MAX_FILE_BYTES = 64 * 2 ** 20


@pytest.mark.parametrize("name", sorted(accepted_files()))
def test_accepted_files_decode_upright_and_transform_to_the_right_shape(tmp_path, name):
    data, (height, width) = accepted_files()[name]
    path = tmp_path / name
    path.write_bytes(data)
    image = read_image(str(path), str(tmp_path), MAX_PIXELS, MAX_FILE_BYTES)
    assert (image.height, image.width) == (height, width)
    assert decode_and_resize(tf.constant(image.data), 16).shape == (16, 16, 3)


@pytest.mark.parametrize("name", sorted(rejected_files()))
def test_rejected_files_say_why(tmp_path, name):
    data, reason = rejected_files()[name]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(RejectedFile, match=reason):
        read_image(str(path), str(tmp_path), MAX_PIXELS, MAX_FILE_BYTES)


@pytest.mark.parametrize("side, reason", [
    (12_000, r"claims 12000x12000 = 144000000 pixels, above max_image_pixels=50000000"),
    (100_000, r"10000000000 pixels.*not decoded"),  # past Pillow's own limit too
])
def test_a_decompression_bomb_is_refused_without_decoding(tmp_path, side, reason):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_claiming_size(side, side))
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(RejectedFile, match=reason):
        read_image(str(path), str(tmp_path), MAX_PIXELS, MAX_FILE_BYTES)
    # Decoding would need side * side * 3 bytes: 432 MB and 30 GB.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 100_000  # KiB


@pytest.mark.parametrize("image, reason", [
    # Pillow cannot read this header, TF decodes it.
    (gif(1000, 1000, signature=b"GIF80a"), "claims 1000x1000 = 1000000 pixels"),
    # TF's canvas is the largest frame, whatever the logical screen says.
    (gif(1000, 1000, screen=(10, 10)), "claims 1000x1000 = 1000000 pixels"),
    # TF decodes every frame.
    (gif(500, 500, frames=5), "claims 500x500 x 5 frames = 1250000 pixels"),
], ids=["unusual_signature", "small_logical_screen", "many_frames"])
def test_every_gif_is_size_checked_as_tf_would_decode_it(tmp_path, image, reason):
    path = tmp_path / "cat.gif"
    path.write_bytes(image)
    with pytest.raises(RejectedFile, match=f"{reason}, above max_image_pixels=999999: not decoded"):
        read_image(str(path), str(tmp_path), 999_999, MAX_FILE_BYTES)


def test_a_file_above_the_size_limit_is_rejected_unread(tmp_path):
    path = tmp_path / "cat.jpg"
    path.write_bytes(encode_image(30, 20) + os.urandom(200_000))  # a valid JPEG, then junk
    with pytest.raises(RejectedFile, match=r"^\d+ bytes, above max_file_bytes=100000: not read"):
        read_image(str(path), str(tmp_path), MAX_PIXELS, max_file_bytes=100_000)


def _without_waiting_on(fifo, read):
    """What `read()` returns (or raises), failing the test if it waited on the named pipe."""
    results = []

    def attempt():
        try:
            results.append((read(), None))
        except Exception as error:  # raised again below, in the test's thread
            results.append((None, error))
    worker = threading.Thread(target=attempt)
    worker.start()
    worker.join(timeout=30)
    if worker.is_alive():  # stuck opening the pipe: give it a writer so that it ends
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join()
        pytest.fail("the named pipe was opened and waited on")
    [(result, error)] = results
    if error:
        raise error
    return result


def test_a_named_pipe_is_ignored_without_being_opened(tmp_path):
    (tmp_path / "cats").mkdir()
    fifo = tmp_path / "cats" / "cat.1.jpg"
    os.mkfifo(fifo)
    assert ignore_reason(str(fifo)) == "not a regular file: a named pipe (FIFO)"
    assert ignore_reason(str(tmp_path / "cats")) == "not a regular file: a folder"
    do_fn = ImageToExampleDoFn(["cats", "dogs"], str(tmp_path), MAX_PIXELS, MAX_FILE_BYTES)
    outcomes = _without_waiting_on(fifo, lambda: list(do_fn.process(os.fsencode(fifo))))
    [outcome] = [outcome.value for outcome in outcomes]
    assert '"outcome": "ignored"' in outcome and "named pipe" in outcome


def test_a_file_swapped_for_a_named_pipe_after_the_listing_is_rejected_without_blocking(
        tmp_path):
    """The listing's check (ignore_reason) passed on a regular file; then a named pipe took
    its name: reading it is checked on the descriptor it is read from."""
    fifo = tmp_path / "cat.1.jpg"
    os.mkfifo(fifo)
    with pytest.raises(RejectedFile, match=r"^not a regular file: a named pipe \(FIFO\)$"):
        _without_waiting_on(fifo, lambda: read_image(str(fifo), str(tmp_path), MAX_PIXELS,
                                                     MAX_FILE_BYTES))


def test_a_symlink_leading_outside_the_data_root_is_refused(tmp_path):
    outside = tmp_path / "elsewhere.jpg"
    outside.write_bytes(accepted_files()["one_pixel.jpg"][0])
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "link.jpg")
    with pytest.raises(RejectedFile, match="outside the data root"):
        read_image(str(root / "link.jpg"), str(root), MAX_PIXELS, MAX_FILE_BYTES)


def test_a_symlink_inside_the_data_root_is_followed(tmp_path):
    (tmp_path / "real.jpg").write_bytes(accepted_files()["one_pixel.jpg"][0])
    os.symlink(tmp_path / "real.jpg", tmp_path / "link.jpg")
    assert read_image(str(tmp_path / "link.jpg"), str(tmp_path), MAX_PIXELS,
                      MAX_FILE_BYTES).height == 1


def test_hidden_and_system_files_are_ignored():
    assert all(is_ignored(name) for name in IGNORED_FILE_NAMES)
    assert not any(is_ignored(name) for name in accepted_files())
