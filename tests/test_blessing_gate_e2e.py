"""The blessing gate under attack: models trained on shuffled labels are never pushed.

A model trained on well-labelled data is blessed and pushed (conftest's shared
`blessed_run`). Then the same images with their training labels shuffled: the candidate
learns nothing, and the Evaluator (default thresholds: an
absolute accuracy bound and no drop against the blessed baseline) must refuse it, so the
serving directory never changes.
"""
import random
import shutil
from pathlib import Path

import pytest
import tensorflow_model_analysis as tfma

from metadata.runs import latest_run_summary
from tests.helpers import run_make, serving_versions

pytestmark = pytest.mark.e2e

# One shuffle: a model that learnt nothing is refused by both thresholds, whatever the
# seed (three seeds cost three trainings for the same property; the thresholds' settings
# are checked in tests/test_definition.py).
SHUFFLE_SEEDS = (1,)


def with_shuffled_training_labels(data_root: Path, shuffled_root: Path, seed: int) -> None:
    """A copy of the dataset whose training images are dealt to the classes at random
    (class sizes kept); the eval split keeps its true labels."""
    shutil.copytree(data_root, shuffled_root)
    training = shuffled_root / "training_set"
    files = sorted(training.glob("*/*.jpg"))
    labels = [path.parent.name for path in files]
    random.Random(seed).shuffle(labels)
    for path, label in zip(files, labels):
        path.rename(training / label / path.name)


@pytest.mark.parametrize("seed", SHUFFLE_SEEDS)
def test_a_model_trained_on_shuffled_labels_is_never_blessed(blessed_run, seed):
    config, good = blessed_run["config"], blessed_run["summary"]
    served_before = serving_versions(config)
    shuffled_root = blessed_run["work"] / f"shuffled-{seed}"
    with_shuffled_training_labels(Path(blessed_run["environment"]["DATA_ROOT"]),
                                  shuffled_root, seed)

    run_make("pipeline", {**blessed_run["environment"], "DATA_ROOT": str(shuffled_root)})
    candidate = latest_run_summary(config.metadata_path)

    assert candidate.run_id != good.run_id
    assert not candidate.blessed
    assert candidate.pushed_model_dir is None
    assert serving_versions(config) == served_before
    # Judged against the good model on the same eval images, and found worse.
    baseline = tfma.load_eval_result(candidate.evaluation_uri, model_name="baseline")
    baseline_accuracy = baseline.get_metrics_for_slice()["binary_accuracy"]["doubleValue"]
    assert baseline_accuracy == pytest.approx(good.metrics["binary_accuracy"])
    assert candidate.metrics["binary_accuracy"] < baseline_accuracy - config.max_accuracy_drop
