"""The blessing gate under attack: models trained on shuffled labels are never pushed.

A model trained on well-labelled data is blessed and pushed. Then, for several seeds, the
same images with their training labels shuffled: each candidate learns nothing, and the
Evaluator (default thresholds: an absolute accuracy bound and no drop against the blessed
baseline) must refuse it, so the serving directory never changes.
"""
import random
import shutil
from pathlib import Path

import pytest
import tensorflow_model_analysis as tfma

from data.generate import generate_dataset
from metadata.runs import latest_run_summary
from pipeline.config import PipelineConfig
from tests.helpers import run_make, serving_versions

pytestmark = pytest.mark.e2e

SHUFFLE_SEEDS = (1, 2, 3)


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


@pytest.fixture(scope="module")
def blessed_pipeline(tmp_path_factory):
    work = tmp_path_factory.mktemp("gate")
    data_root = work / "data"
    generate_dataset(data_root, train_per_class=100, test_per_class=50, seed=11)
    environment = {
        "DATA_ROOT": str(data_root),
        "OUTPUT_DIR": str(work / "outputs"),
        "LOCAL_HOME": str(work / "tfx_cli_home"),
        "PIPELINE_NAME": "gate-test",
        # Enough for a model clearly better than chance (about 0.85), judged by the
        # default thresholds.
        "IMAGE_SIZE_PX": "64",
        "BATCH_SIZE_PER_REPLICA": "16",
        "TRAIN_EPOCHS": "16",  # 12 steps each
        "WARMUP_STEPS": "10",
        "BEAM_NUM_WORKERS": "2",
    }
    run_make("pipeline", environment)
    config = PipelineConfig.from_env(environment)
    good = latest_run_summary(config.metadata_path)
    assert good.blessed and good.pushed_model_dir
    return {"environment": environment, "work": work, "config": config, "good": good}


@pytest.mark.parametrize("seed", SHUFFLE_SEEDS)
def test_a_model_trained_on_shuffled_labels_is_never_blessed(blessed_pipeline, seed):
    config, good = blessed_pipeline["config"], blessed_pipeline["good"]
    served_before = serving_versions(config)
    shuffled_root = blessed_pipeline["work"] / f"shuffled-{seed}"
    with_shuffled_training_labels(Path(blessed_pipeline["environment"]["DATA_ROOT"]),
                                  shuffled_root, seed)

    run_make("pipeline", {**blessed_pipeline["environment"], "DATA_ROOT": str(shuffled_root)})
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
