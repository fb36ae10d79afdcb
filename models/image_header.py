"""What an encoded image claims before it is decoded, and the image turned upright.

Ingestion (components/image_example_gen/image_file.py) and serving (models/serving.py) both read images
through these functions: what one refuses the other refuses, and a photo that ingestion
stores upright is served upright, pixel for pixel.

- `format_index`: the format `tf.io.decode_image` will take the bytes for, by their magic.
- `decoded_size`: the canvas that decoding allocates, read from the header: (width,
  height, frames). For a GIF it is the largest frame times the number of frames: TF
  decodes every frame (then keeps the first) onto a canvas of the largest frame's size,
  whatever the logical screen in the GIF's header says.
- `upright`: the image as it is, or, when it carries an EXIF orientation (a JPEG's APP1
  segment or a PNG's eXIf chunk), decoded, turned upright and re-encoded losslessly as
  PNG.
"""
import tensorflow as tf

# The formats tf.io.decode_image reads, by the magic bytes it tells them apart with.
MAGIC_BYTES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF8", b"BM")
JPEG, PNG, GIF, BMP = range(len(MAGIC_BYTES))

ERROR_FORMAT = "not a JPEG, PNG, GIF or BMP image"
ERROR_HEADER = "unreadable image header"

# EXIF orientation is looked for in the file's first bytes: where cameras write it (a JPEG
# APP1 segment is at most 64 KiB, and comes before the image data).
_EXIF_SEARCH_BYTES = 65536
# Reads past the end of the bytes read see zeros.
_PADDING = 64
# JPEG segments or PNG chunks looked at for EXIF data before giving up.
_MAX_SEGMENTS = 16
_ORIENTATION_TAG = 0x0112
# IFD entries looked at for the orientation tag (IFD0 of a camera holds a dozen or so).
_MAX_IFD_ENTRIES = 64
_TIFF_HEADERS = (b"II*\x00", b"MM\x00*")


def format_index(image_bytes: tf.Tensor) -> tf.Tensor:
    """Per input (any shape): its index in MAGIC_BYTES, or -1 if none matches."""
    index = tf.fill(tf.shape(image_bytes), -1)
    for i, magic in reversed(list(enumerate(MAGIC_BYTES))):
        matches = tf.strings.substr(image_bytes, 0, len(magic)) == magic
        index = tf.where(matches, i, index)
    return index


def _header_field(image_bytes: tf.Tensor, offset: int, length: int,
                  big_endian: bool) -> tf.Tensor:
    """The unsigned integer at bytes [offset, offset + length), as int64; fails (and so
    marks the header unreadable) when the header is shorter than the field."""
    digits = tf.cast(tf.io.decode_raw(tf.strings.substr(image_bytes, offset, length), tf.uint8),
                     tf.int64)
    return _combine(tf.reshape(digits, [length]), big_endian)


def _combine(digits: tf.Tensor, big_endian) -> tf.Tensor:
    """Bytes (int64, last axis) -> the unsigned integer they spell in that byte order."""
    length = digits.shape[-1]
    little_weights = tf.constant([256 ** i for i in range(length)], tf.int64)
    weights = tf.where(big_endian, tf.reverse(little_weights, [0]), little_weights)
    return tf.reduce_sum(digits * weights, axis=-1)


def _jpeg_size(image_bytes):
    height, width = tf.unstack(tf.io.extract_jpeg_shape(image_bytes, output_type=tf.int64)[:2])
    return width, height, tf.constant(1, tf.int64)


def _png_size(image_bytes):  # IHDR: big-endian uint32s
    return (_header_field(image_bytes, 16, 4, True), _header_field(image_bytes, 20, 4, True),
            tf.constant(1, tf.int64))


def _bmp_size(image_bytes):  # DIB header: int32s, a negative height meaning top-down rows
    def signed(value):
        return tf.abs(tf.where(value >= 2 ** 31, value - 2 ** 32, value))
    return (signed(_header_field(image_bytes, 18, 4, False)),
            signed(_header_field(image_bytes, 22, 4, False)), tf.constant(1, tf.int64))


def _gif_size(image_bytes):
    """Walks the GIF's blocks: every image descriptor is a frame that TF decodes."""
    # Fails on a header shorter than the logical screen descriptor.
    flags = _header_field(image_bytes, 10, 1, False)
    data = tf.cast(tf.io.decode_raw(image_bytes, tf.uint8), tf.int64)
    end = tf.size(data, tf.int64)
    data = tf.concat([data, tf.zeros([_PADDING], tf.int64)], 0)

    def byte(position):
        return tf.gather(data, tf.minimum(position, end))  # data[end] is padding: 0

    def uint16(position):
        return byte(position) + 256 * byte(position + 1)

    def color_table_size(packed_fields):  # flag bit 7, size in bits 0-2
        return tf.where(packed_fields >= 128, 3 * 2 ** (packed_fields % 8 + 1), 0)

    def step(position, in_sub_blocks, width, height, frames):
        introducer = byte(position)

        def sub_block():  # a length byte, then that many bytes; length 0 ends the run
            return position + 1 + introducer, introducer > 0, width, height, frames

        def image_descriptor():  # then a local color table, the LZW code size, sub-blocks
            after = position + 10 + color_table_size(byte(position + 9)) + 1
            return (after, tf.constant(True), tf.maximum(width, uint16(position + 5)),
                    tf.maximum(height, uint16(position + 7)), frames + 1)

        def extension():  # introducer, label, then sub-blocks
            return position + 2, tf.constant(True), width, height, frames

        def last_block():  # the trailer, or anything else: decoding stops there
            return end, tf.constant(False), width, height, frames

        return tf.case([(in_sub_blocks, sub_block),
                        (tf.equal(introducer, 0x2C), image_descriptor),
                        (tf.equal(introducer, 0x21), extension)], default=last_block)

    zero = tf.constant(0, tf.int64)
    _, _, width, height, frames = tf.while_loop(
        lambda position, *_: position < end, step,
        (13 + color_table_size(flags), tf.constant(False), zero, zero, zero))
    return width, height, frames


_SIZE_READERS = (_jpeg_size, _png_size, _gif_size, _bmp_size)


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def decoded_size(image_bytes: tf.Tensor) -> tf.Tensor:
    """int64 [width, height, frames] that decoding an image of one of MAGIC_BYTES's
    formats allocates, read from its header; fails when the header is unreadable."""
    return tf.stack(tf.switch_case(tf.maximum(format_index(image_bytes), 0),
                                   [lambda f=f: f(image_bytes) for f in _SIZE_READERS]))


def _read_uint(head: tf.Tensor, position: tf.Tensor, length: int, big_endian) -> tf.Tensor:
    """The unsigned integer(s) of `length` bytes at `position` (any shape) in `head`."""
    indices = position[..., None] + tf.range(length, dtype=tf.int64)
    digits = tf.gather(head, tf.clip_by_value(indices, 0, _EXIF_SEARCH_BYTES))
    return _combine(tf.cast(digits, tf.int64), big_endian)


def _bytes_equal(head: tf.Tensor, position: tf.Tensor, expected: bytes) -> tf.Tensor:
    return tf.equal(_read_uint(head, position, len(expected), True),
                    int.from_bytes(expected, "big"))


def _exif_tiff_position(head: tf.Tensor, kind: tf.Tensor) -> tf.Tensor:
    """Where the TIFF structure holding the EXIF tags starts in `head`, or -1: in a
    JPEG's APP1 segment after "Exif" and two zero bytes, or in a PNG's eXIf chunk.

    Walks the segments (JPEG: marker, big-endian length counting itself, data) or chunks
    (PNG: length, type, data, CRC) that come before the image data.
    """
    is_jpeg = tf.equal(kind, JPEG)

    def step(position, tiff, done):
        jpeg_exif = (tf.equal(_read_uint(head, position, 2, True), 0xFFE1)
                     & _bytes_equal(head, position + 4, b"Exif\x00\x00"))
        png_exif = _bytes_equal(head, position + 4, b"eXIf")
        found = tf.where(is_jpeg, jpeg_exif, png_exif)
        jpeg_last = (tf.not_equal(_read_uint(head, position, 1, True), 0xFF)
                     | tf.equal(_read_uint(head, position, 2, True), 0xFFDA))  # SOS
        png_last = _bytes_equal(head, position + 4, b"IDAT") | _bytes_equal(
            head, position + 4, b"IEND")
        following = tf.where(is_jpeg, position + 2 + _read_uint(head, position + 2, 2, True),
                             position + 12 + _read_uint(head, position, 4, True))
        tiff_offset = tf.cast(tf.where(is_jpeg, 10, 8), tf.int64)
        return (following, tf.where(found, position + tiff_offset, tiff),
                done | found | tf.where(is_jpeg, jpeg_last, png_last))

    first = tf.cast(tf.where(is_jpeg, 2, 8), tf.int64)  # after the signature
    _, tiff, _ = tf.while_loop(
        lambda position, tiff, done: ~done & (position < _EXIF_SEARCH_BYTES), step,
        (first, tf.constant(-1, tf.int64), ~(is_jpeg | tf.equal(kind, PNG))),
        maximum_iterations=_MAX_SEGMENTS)
    return tiff


def exif_orientation(image_bytes: tf.Tensor) -> tf.Tensor:
    """int64 EXIF orientation of one image, 1 (as stored) to 8; 1 when it has none.

    Never fails: anything unreadable reads as 1.
    """
    head = tf.io.decode_raw(tf.strings.substr(image_bytes, 0, _EXIF_SEARCH_BYTES), tf.uint8)
    head = tf.pad(head, [[0, _EXIF_SEARCH_BYTES + _PADDING - tf.size(head)]])
    tiff = _exif_tiff_position(head, format_index(image_bytes))
    big_endian = _bytes_equal(head, tiff, _TIFF_HEADERS[1])
    ifd = tiff + _read_uint(head, tiff + 4, 4, big_endian)
    entry_numbers = tf.range(_MAX_IFD_ENTRIES, dtype=tf.int64)
    entries = ifd + 2 + 12 * entry_numbers
    is_orientation = ((entry_numbers < _read_uint(head, ifd, 2, big_endian))
                      & tf.equal(_read_uint(head, entries, 2, big_endian), _ORIENTATION_TAG))
    # A SHORT value sits in the first two bytes of the entry's value field.
    entry = entries[tf.argmax(tf.cast(is_orientation, tf.int32))]
    value = _read_uint(head, entry + 8, 2, big_endian)
    valid = ((tiff >= 0) & (_bytes_equal(head, tiff, _TIFF_HEADERS[0]) | big_endian)
             & tf.reduce_any(is_orientation) & (value >= 1) & (value <= 8))
    return tf.where(valid, value, 1)


def may_have_exif(image_bytes: bytes) -> bool:
    """False when `exif_orientation` is sure to read 1, found without TensorFlow: the
    EXIF identifiers it looks for are absent. Spares most files a graph call."""
    head = image_bytes[:_EXIF_SEARCH_BYTES]
    return b"Exif\x00\x00" in head or b"eXIf" in head


def orient(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """A decoded [height, width, channels] image as EXIF `orientation` says to show it."""
    return tf.switch_case(tf.cast(orientation, tf.int32) - 1, [
        lambda: image,
        lambda: tf.image.flip_left_right(image),
        lambda: tf.image.rot90(image, 2),
        lambda: tf.image.flip_up_down(image),
        lambda: tf.image.transpose(image),
        lambda: tf.image.rot90(image, 3),  # 90 degrees clockwise
        lambda: tf.image.rot90(tf.image.transpose(image), 2),  # the other diagonal
        lambda: tf.image.rot90(image, 1),  # 90 degrees counter-clockwise
    ])


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def upright(image_bytes: tf.Tensor) -> tf.Tensor:
    """The encoded image, or its upright PNG re-encoding when it has an EXIF orientation.

    Decoded as Transform decodes (models/preprocessing.py), so that Transform then reads
    exactly these pixels back from the PNG.
    """
    orientation = exif_orientation(image_bytes)
    return tf.cond(
        tf.equal(orientation, 1), lambda: image_bytes,
        lambda: tf.io.encode_png(orient(
            tf.io.decode_image(image_bytes, channels=3, expand_animations=False), orientation)))
