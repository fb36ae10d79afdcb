"""Tests for the seeded cats-vs-dogs generator (data/generate.py)."""
import json
import re

import numpy as np
import pytest
from PIL import Image

from data import generate
from data.generate import generate_dataset

TRAIN, TEST = 4, 2


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen") / "dataset"
    summary = generate_dataset(root, TRAIN, TEST, seed=3)
    return root, summary


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.jpg"))


def test_layout_and_names_are_kaggles(dataset):
    root, summary = dataset
    expected = sorted(
        [f"training_set/cats/cat.{n}.jpg" for n in range(1, TRAIN + 1)]
        + [f"training_set/dogs/dog.{n}.jpg" for n in range(1, TRAIN + 1)]
        + [f"test_set/cats/cat.{n}.jpg" for n in range(TRAIN + 1, TRAIN + TEST + 1)]
        + [f"test_set/dogs/dog.{n}.jpg" for n in range(TRAIN + 1, TRAIN + TEST + 1)]
    )
    assert _files(root) == expected
    assert sorted(p.name for p in root.iterdir()) == [
        "_SUCCESS", "manifest.json", "test_set", "training_set"]
    counts = {"training_set": {"cats": TRAIN, "dogs": TRAIN}, "test_set": {"cats": TEST, "dogs": TEST}}
    assert summary["counts"] == counts and summary["created"] is True
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["counts"] == counts
    assert (manifest["seed"], manifest["train_per_class"], manifest["test_per_class"]) == (3, TRAIN, TEST)
    # No staging folder is left next to the dataset.
    assert [p.name for p in root.parent.iterdir()] == ["dataset"]


def test_files_are_decodable_rgb_jpegs_of_varied_sizes(dataset):
    import tensorflow as tf

    root, _ = dataset
    sizes = set()
    for path in root.rglob("*.jpg"):
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            image.load()
            width, height = image.size
        assert generate.MIN_SIDE <= min(width, height) and max(width, height) <= generate.MAX_SIDE
        decoded = tf.io.decode_jpeg(path.read_bytes(), channels=0)
        assert tuple(decoded.shape) == (height, width, 3)
        sizes.add((width, height))
    assert len(sizes) >= 8  # nearly every one of the 12 files has its own size


def test_same_seed_is_byte_identical_and_other_seed_differs(tmp_path):
    first = generate_dataset(tmp_path / "a", 2, 1, seed=7)
    generate_dataset(tmp_path / "b", 2, 1, seed=7)
    generate_dataset(tmp_path / "c", 2, 1, seed=8)
    names = _files(tmp_path / "a")
    assert names == _files(tmp_path / "b") == _files(tmp_path / "c")
    for name in names + ["manifest.json"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert all((tmp_path / "a" / n).read_bytes() != (tmp_path / "c" / n).read_bytes() for n in names)
    assert first["seed"] == 7


def test_images_do_not_depend_on_generation_order(dataset, tmp_path):
    """A file's content depends only on its own (seed, split, class, number)."""
    root, _ = dataset
    # A larger training split renumbers the test set, but training files 1..TRAIN are unchanged.
    generate_dataset(tmp_path / "bigger", TRAIN + 3, TEST, seed=3)
    for name in ("training_set/cats/cat.1.jpg", f"training_set/dogs/dog.{TRAIN}.jpg"):
        assert (tmp_path / "bigger" / name).read_bytes() == (root / name).read_bytes()


def test_second_call_with_same_parameters_does_not_rewrite(dataset):
    root, _ = dataset
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    summary = generate_dataset(root, TRAIN, TEST, seed=3)
    assert summary["created"] is False
    assert summary["counts"]["training_set"]["dogs"] == TRAIN
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == mtimes


@pytest.mark.parametrize(
    "train, test, seed", [(TRAIN, TEST, 4), (TRAIN + 1, TEST, 3), (TRAIN, TEST + 1, 3)]
)
def test_different_parameters_on_existing_folder_raise(dataset, train, test, seed):
    root, _ = dataset
    with pytest.raises(FileExistsError, match=re.escape(str(root))):
        generate_dataset(root, train, test, seed=seed)


def test_foreign_or_incomplete_folder_raises(tmp_path):
    foreign = tmp_path / "foreign"
    (foreign / "training_set").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="no manifest.json"):
        generate_dataset(foreign, 1, 1)

    incomplete = tmp_path / "incomplete"
    generate_dataset(incomplete, 1, 1)
    (incomplete / "test_set" / "dogs" / "dog.2.jpg").unlink()
    with pytest.raises(FileExistsError, match="incomplete"):
        generate_dataset(incomplete, 1, 1)


def test_existing_empty_folder_is_filled(tmp_path):
    generate_dataset(tmp_path, 1, 1)
    assert len(_files(tmp_path)) == 4


def test_class_mean_colours_match():
    """Backgrounds and fur share one distribution, so colour alone cannot tell the classes apart."""
    means = {}
    for class_name in generate.CLASSES:
        pixels = [
            np.asarray(generate.render_image(rng, class_name).resize((32, 32)), dtype=np.float64)
            for rng in (generate.image_rng(0, "training_set", class_name, n) for n in range(1, 151))
        ]
        means[class_name] = np.mean(pixels, axis=(0, 1, 2))
    assert np.abs(means["cats"] - means["dogs"]).max() < 10, means


def test_cli_prints_one_line_summary(tmp_path, capsys):
    args = ["--output", str(tmp_path / "cli"), "--train-per-class", "1", "--test-per-class", "1"]
    generate.main(args)
    generate.main(args)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("Generated") and lines[1].startswith("Already present")
    assert "1 cats + 1 dogs" in lines[0]

    with pytest.raises(SystemExit) as exit_info:
        generate.main(args + ["--seed", "5"])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and str(tmp_path / "cli") in error
