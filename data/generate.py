"""Generates the default cats-vs-dogs dataset: seeded synthetic JPEGs in Kaggle's layout.

The real Kaggle dataset (chetankv/dogs-cats-images) cannot be downloaded where the project
runs, so this module draws stylised cats and dogs instead, in exactly that dataset's layout:

    ROOT/training_set/cats/cat.1.jpg ... cat.{train}.jpg    (dogs: dog.N.jpg)
    ROOT/test_set/cats/cat.{train+1}.jpg ... cat.{train+test}.jpg
    ROOT/manifest.json                                       (parameters and counts)
    ROOT/_SUCCESS                                            (complete: a span drop can be)

The classes differ only in shape (cats: pointed ears, slit eyes, whiskers; dogs: long
floppy ears, round snout and nose). Fur, backgrounds, sizes and poses come from the same
distributions for both, so a model cannot separate them by colour alone.

Usage: python -m data.generate --output DIR [--train-per-class N] [--test-per-class M] [--seed S]
"""
import argparse
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from data.folders import EVAL_SPLIT_FOLDER, SPAN_COMPLETE_MARKER, TRAIN_SPLIT_FOLDER
from models import console

SPLITS = (TRAIN_SPLIT_FOLDER, EVAL_SPLIT_FOLDER)
CLASSES = ("cats", "dogs")
FILE_PREFIX = {"cats": "cat", "dogs": "dog"}
MANIFEST_NAME = "manifest.json"
# Bump when the drawing changes, so an old folder is not silently taken for a new dataset.
GENERATOR_VERSION = 1

DEFAULT_TRAIN_PER_CLASS = 500
DEFAULT_TEST_PER_CLASS = 100

MIN_SIDE, MAX_SIDE = 96, 400
MIN_ASPECT, MAX_ASPECT = 0.6, 1.7  # width / height
MIN_QUALITY, MAX_QUALITY = 75, 95

# Fur base colours shared by both classes: black, browns, ginger, cream, white, greys, tan.
FUR_PALETTE = np.array(
    [
        (35, 32, 30), (90, 60, 40), (140, 95, 60), (205, 125, 60), (230, 210, 170),
        (238, 236, 230), (125, 125, 130), (185, 145, 100), (170, 170, 165),
    ],
    dtype=float,
)


def file_number(split, index, train_per_class):
    """Kaggle's file number for the index-th (0-based) image of a split: test continues after train."""
    return index + 1 if split == TRAIN_SPLIT_FOLDER else train_per_class + index + 1


def image_rng(seed, split, class_name, number):
    """A generator seeded by (seed, split, class, file number) alone, so files don't depend on order."""
    return np.random.default_rng([seed, SPLITS.index(split), CLASSES.index(class_name), number])


def render_image(rng, class_name):
    """Draws one cat or dog photo-like RGB image of random size with the given generator."""
    width = int(rng.integers(MIN_SIDE, MAX_SIDE + 1))
    height = int(np.clip(round(width / rng.uniform(MIN_ASPECT, MAX_ASPECT)), MIN_SIDE, MAX_SIDE))
    image = _background(rng, width, height)

    short_side = min(width, height)
    radius = rng.uniform(0.2, 0.27) * short_side
    animal = _animal_layer(rng, class_name, radius)
    # Rotation jitter; the layer is large enough that the rotated animal is not clipped.
    animal = animal.rotate(rng.uniform(-25, 25), resample=Image.BILINEAR)
    center_x = rng.uniform(0.3, 0.7) * width
    center_y = rng.uniform(0.4, 0.62) * height
    offset = (round(center_x - animal.width / 2), round(center_y - animal.height / 2))
    image.paste(animal, offset, animal)

    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    return _add_noise(rng, image)


def _background(rng, width, height):
    """A gradient between two random colours plus clutter shapes, the same for both classes."""
    start, end = rng.uniform(0, 255, size=(2, 3))
    angle = rng.uniform(0, 2 * math.pi)
    xs = np.arange(width, dtype=np.float32) * math.cos(angle)
    ys = np.arange(height, dtype=np.float32)[:, None] * math.sin(angle)
    ramp = xs + ys
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-6)
    pixels = start.astype(np.float32) + ramp[..., None] * (end - start).astype(np.float32)
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")

    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(0, 7)):
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        x0, x1 = sorted(rng.uniform(-0.1, 1.1, size=2) * width)
        y0, y1 = sorted(rng.uniform(-0.1, 1.1, size=2) * height)
        # Few triangles: clutter should not look like cat ears too often.
        shape = rng.choice(4, p=[0.35, 0.3, 0.25, 0.1])
        if shape == 0:
            draw.rectangle((x0, y0, x1, y1), fill=color)
        elif shape == 1:
            draw.ellipse((x0, y0, x1, y1), fill=color)
        elif shape == 2:
            draw.line((x0, y0, x1, y1), fill=color, width=int(rng.integers(2, 12)))
        else:
            corners = rng.uniform(0, 1, size=(3, 2)) * (width, height)
            draw.polygon([tuple(p) for p in corners], fill=color)
    return image


def _add_noise(rng, image):
    """Adds sensor-like Gaussian noise of random strength."""
    sigma = rng.uniform(0, 10)
    pixels = np.array(image, dtype=np.float32)
    pixels += sigma * rng.standard_normal(pixels.shape, dtype=np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _fur_color(rng):
    """A fur colour drawn from the palette with per-channel and brightness jitter."""
    base = FUR_PALETTE[rng.integers(len(FUR_PALETTE))]
    color = base * rng.uniform(0.8, 1.15) + rng.uniform(-20, 20, size=3)
    return _rgb(color)


def _rgb(color):
    """An RGB tuple of ints, as Pillow's drawing wants."""
    return tuple(int(c) for c in np.clip(color, 0, 255))


def _shade(color, factor):
    """Darkens (factor < 1) or lightens towards white (factor > 1) a colour."""
    color = np.asarray(color, dtype=float)
    if factor <= 1:
        return _rgb(color * factor)
    return _rgb(color + (255 - color) * (factor - 1))


def _marking(rng, fur):
    """A shade of the fur that stands out from it: darker on light fur, lighter on dark fur.

    Used for dog ears and cat inner ears alike, so the classes stay balanced in colour.
    """
    if sum(fur) > 380:
        return _shade(fur, rng.uniform(0.45, 0.65))
    return _shade(fur, rng.uniform(1.4, 1.7))


def _contrasting(color):
    """Near-white on dark fur, near-black on light fur, so fine strokes stay visible."""
    return (235, 235, 230) if sum(color) < 380 else (25, 25, 25)


def _outline(fur, r):
    """A dark outline colour and stroke width, so the head reads against any background."""
    return _shade(fur, 0.4), max(1, round(r / 18))


def _animal_layer(rng, class_name, radius):
    """A transparent square layer with the animal's head (and maybe body) centred in it."""
    size = int(math.ceil(5 * radius))
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    fur = _fur_color(rng)
    center = size / 2
    if rng.random() < 0.5:
        # Same body for both classes: the class must be read from the head.
        body_fur = fur if rng.random() < 0.7 else _fur_color(rng)
        draw.ellipse(
            _box(center, center + 1.45 * radius, rng.uniform(0.9, 1.2) * radius, 0.9 * radius),
            fill=body_fur,
        )
    if class_name == "cats":
        _draw_cat_head(rng, draw, center, radius, fur)
    else:
        _draw_dog_head(rng, draw, center, radius, fur)
    return layer


def _box(x, y, half_width, half_height):
    """The bounding box Pillow wants for an ellipse centred at (x, y)."""
    return (x - half_width, y - half_height, x + half_width, y + half_height)


def _draw_cat_head(rng, draw, c, r, fur):
    """Cat: tall pointed triangular ears, a wide head, almond eyes with slit pupils, whiskers."""
    ear_height = rng.uniform(1.65, 1.95) * r
    ear_spread = rng.uniform(0.7, 0.9) * r
    inner_ear = _marking(rng, fur) if rng.random() < 0.7 else (225, 150, 155)
    outline, outline_width = _outline(fur, r)
    for side in (-1, 1):
        outer, inner = (c + side * 1.0 * r, c - 0.25 * r), (c + side * 0.1 * r, c - 0.9 * r)
        apex = (c + side * ear_spread, c - ear_height)
        draw.polygon([outer, apex, inner], fill=fur, outline=outline, width=outline_width)
        draw.polygon(_shrink([outer, apex, inner], 0.6), fill=inner_ear)
    draw.ellipse(
        _box(c, c, rng.uniform(1.0, 1.1) * r, rng.uniform(0.85, 0.95) * r),
        fill=fur, outline=outline, width=outline_width,
    )

    # Whisker pads: a lighter patch, balanced by the dog's muzzle so the colours match.
    pad = _shade(fur, rng.uniform(1.2, 1.6))
    for side in (-1, 1):
        draw.ellipse(_box(c + side * 0.17 * r, c + 0.38 * r, 0.2 * r, 0.16 * r), fill=pad)
    iris = _rgb(rng.choice([(120, 190, 60), (215, 185, 50), (200, 130, 40), (90, 160, 190)]))
    for side in (-1, 1):
        eye_x, eye_y = c + side * 0.4 * r, c - 0.12 * r
        draw.ellipse(_box(eye_x, eye_y, 0.22 * r, 0.13 * r), fill=iris)
        draw.ellipse(_box(eye_x, eye_y, 0.045 * r, 0.12 * r), fill=(10, 10, 10))
    nose = [(c - 0.1 * r, c + 0.18 * r), (c + 0.1 * r, c + 0.18 * r), (c, c + 0.3 * r)]
    draw.polygon(nose, fill=(220, 130, 140))

    whisker_color = _contrasting(fur)
    whisker_width = max(1, round(r / 30))
    for side in (-1, 1):
        for drop in (0.1, 0.33, 0.56):
            end_y = c + (drop + rng.uniform(-0.08, 0.08)) * r
            draw.line(
                (c + side * 0.3 * r, c + 0.38 * r, c + side * 1.65 * r, end_y),
                fill=whisker_color,
                width=whisker_width,
            )


def _draw_dog_head(rng, draw, c, r, fur):
    """Dog: a tall head, long rounded ears hanging down its sides, a big muzzle and round nose."""
    outline, outline_width = _outline(fur, r)
    draw.ellipse(
        _box(c, c, rng.uniform(0.9, 1.0) * r, rng.uniform(1.0, 1.1) * r),
        fill=fur, outline=outline, width=outline_width,
    )
    ear_color = _marking(rng, fur) if rng.random() < 0.7 else _fur_color(rng)
    ear_bottom = rng.uniform(1.0, 1.3) * r
    for side in (-1, 1):
        ear_x = c + side * rng.uniform(0.9, 1.05) * r
        # Drawn after the head so the ears overlap its outline, as floppy ears do.
        draw.ellipse(
            (ear_x - 0.35 * r, c - 0.85 * r, ear_x + 0.35 * r, c + ear_bottom),
            fill=ear_color, outline=outline, width=outline_width,
        )

    muzzle = _shade(fur, rng.uniform(1.2, 1.6))
    draw.ellipse(_box(c, c + 0.42 * r, 0.48 * r, 0.38 * r), fill=muzzle)
    nose = _rgb(rng.choice([(20, 18, 18), (70, 45, 35)]))
    draw.ellipse(_box(c, c + 0.25 * r, 0.21 * r, 0.15 * r), fill=nose)
    draw.line((c, c + 0.38 * r, c, c + 0.6 * r), fill=(30, 25, 25), width=max(1, round(r / 25)))
    if rng.random() < 0.4:
        draw.ellipse(_box(c, c + 0.72 * r, 0.12 * r, 0.14 * r), fill=(215, 100, 110))
    for side in (-1, 1):
        eye_x, eye_y = c + side * 0.38 * r, c - 0.2 * r
        draw.ellipse(_box(eye_x, eye_y, 0.12 * r, 0.12 * r), fill=(30, 20, 15))
        glint = _box(eye_x + 0.04 * r, eye_y - 0.04 * r, 0.035 * r, 0.035 * r)
        draw.ellipse(glint, fill=(240, 240, 240))


def _shrink(points, factor):
    """The polygon scaled by factor about its centroid."""
    cx = sum(x for x, _ in points) / len(points)
    cy = sum(y for _, y in points) / len(points)
    return [(cx + (x - cx) * factor, cy + (y - cy) * factor) for x, y in points]


def _manifest(train_per_class, test_per_class, seed):
    """What manifest.json records: everything that determines the files, and the counts."""
    counts = {
        TRAIN_SPLIT_FOLDER: {name: train_per_class for name in CLASSES},
        EVAL_SPLIT_FOLDER: {name: test_per_class for name in CLASSES},
    }
    return {
        "generator": "data.generate",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "train_per_class": train_per_class,
        "test_per_class": test_per_class,
        "counts": counts,
    }


def _image_keys(train_per_class, test_per_class):
    """(split, class, file number) of every image, in Kaggle's numbering."""
    per_split = {TRAIN_SPLIT_FOLDER: train_per_class, EVAL_SPLIT_FOLDER: test_per_class}
    return [
        (split, class_name, file_number(split, index, train_per_class))
        for split in SPLITS
        for class_name in CLASSES
        for index in range(per_split[split])
    ]


def relative_path(split, class_name, number):
    """The image's path under the dataset root, e.g. training_set/cats/cat.1.jpg."""
    return Path(split, class_name, f"{FILE_PREFIX[class_name]}.{number}.jpg")


def generate_dataset(root, train_per_class, test_per_class, seed=0):
    """Writes the dataset under root (or checks an existing one) and returns its manifest.

    The returned dict holds the parameters, "counts" per split and class, and "created"
    (False when a complete dataset with the same parameters was already there).
    Raises FileExistsError if root holds anything else.
    """
    if train_per_class < 1 or test_per_class < 1 or seed < 0:
        raise ValueError("train_per_class and test_per_class must be >= 1 and seed >= 0")
    root = Path(root)
    manifest = _manifest(train_per_class, test_per_class, seed)
    if root.exists() and any(root.iterdir()):
        _check_existing(root, manifest)
        return {**manifest, "created": False}

    # Written to a sibling folder and renamed at the end, so an interrupted run never leaves
    # a partial dataset behind that a later call would have to tell apart from a complete one.
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    staging.chmod(0o755)  # mkdtemp's owner-only mode would otherwise carry over to the dataset
    try:
        for split, class_name, number in _image_keys(train_per_class, test_per_class):
            rng = image_rng(seed, split, class_name, number)
            image = render_image(rng, class_name)
            quality = int(rng.integers(MIN_QUALITY, MAX_QUALITY + 1))
            (staging / split / class_name).mkdir(parents=True, exist_ok=True)
            image.save(staging / relative_path(split, class_name, number), "JPEG", quality=quality)
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        # Complete: as a span-<N> drop, ingested (data/folders.py).
        (staging / SPAN_COMPLETE_MARKER).touch()
        if root.exists():
            root.rmdir()  # empty, checked above; os.replace cannot replace a directory
        os.replace(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {**manifest, "created": True}


def _check_existing(root, manifest):
    """Accepts a non-empty root only if it is this exact dataset, complete."""
    manifest_path = root / MANIFEST_NAME
    if not manifest_path.is_file():
        raise FileExistsError(
            f"{root} is not empty and has no {MANIFEST_NAME}; it is not a generated dataset. "
            "Choose another output folder or empty it."
        )
    existing = json.loads(manifest_path.read_text())
    if existing != manifest:
        raise FileExistsError(
            f"{root} holds a dataset generated with different parameters "
            f"(found {_describe(existing)}, asked for {_describe(manifest)}). "
            "Delete it or choose another output folder rather than mixing datasets."
        )
    keys = _image_keys(manifest["train_per_class"], manifest["test_per_class"])
    expected = [relative_path(*key) for key in keys]
    missing = [path for path in expected if not (root / path).is_file()]
    if missing:
        raise FileExistsError(
            f"{root} is an incomplete dataset ({len(missing)} images missing, e.g. {missing[0]}); "
            "delete it and generate again."
        )


def _describe(manifest):
    """The manifest's parameters, for error messages."""
    keys = ("version", "seed", "train_per_class", "test_per_class")
    return ", ".join(f"{key}={manifest.get(key)}" for key in keys)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="dataset root folder")
    parser.add_argument("--train-per-class", type=int, default=DEFAULT_TRAIN_PER_CLASS)
    parser.add_argument("--test-per-class", type=int, default=DEFAULT_TEST_PER_CLASS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        summary = generate_dataset(args.output, args.train_per_class, args.test_per_class, args.seed)
    except (FileExistsError, ValueError) as error:
        parser.exit(1, f"error: {error}\n")  # a clear message, not a traceback, for make
    splits = ", ".join(
        f"{split} {counts['cats']} cats + {counts['dogs']} dogs" for split, counts in summary["counts"].items()
    )
    status = "Generated" if summary["created"] else "Already present"
    console.show(f"{status}: {args.output} {splits} (seed {args.seed})")


if __name__ == "__main__":
    main()
