"""Scheduled retraining through `make retrain`, on tiny generated spans.

Three cycles: span 1 gives a pushed model; span 2 gives a candidate compared with the
span-1 model; span 3, whose training labels are swapped, is trained but not blessed, and
the serving directory keeps what it had. A cycle without a new span does nothing.
"""
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow_model_analysis as tfma

from data.generate import generate_dataset
from pipeline import history, summary
from pipeline.config import PipelineConfig
from tests.helpers import REPO_ROOT, run_make, serving_versions

pytestmark = pytest.mark.e2e


def logged(result: subprocess.CompletedProcess) -> str:
    return result.stdout + result.stderr


def add_span(data_root: Path, span: int, swap_training_labels: bool = False) -> None:
    span_root = data_root / f"span-{span}"
    # The swapped span outnumbers the good one 3:1 inside the training window, so that the
    # candidate, warm-started from a good model, learns the swapped labels.
    generate_dataset(span_root, train_per_class=300 if swap_training_labels else 100,
                     test_per_class=50, seed=span)
    if swap_training_labels:
        training = span_root / "training_set"
        (training / "cats").rename(training / "swap")
        (training / "dogs").rename(training / "cats")
        (training / "swap").rename(training / "dogs")


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    work = tmp_path_factory.mktemp("retraining")
    (work / "data").mkdir()
    return {
        "SPANS": "true",
        "TRAINING_WINDOW_SPANS": "2",
        "DATA_ROOT": str(work / "data"),
        "OUTPUT_DIR": str(work / "outputs"),
        "LOCAL_HOME": str(work / "tfx_cli_home"),
        "PIPELINE_NAME": "retraining-test",
        # Enough pixels, images and steps for a model that is clearly better than chance
        # (about 0.85 eval accuracy after span 1), so the default thresholds can judge it.
        "IMAGE_SIZE_PX": "64",
        "BATCH_SIZE_PER_REPLICA": "16",
        "TRAIN_STEPS": "200",
        "STEPS_PER_EPOCH": "50",
        "WARMUP_STEPS": "10",
        "BEAM_NUM_WORKERS": "2",
    }


def test_three_scheduled_cycles_bless_only_what_is_not_worse(environment):
    config = PipelineConfig.from_env(environment)
    data_root = Path(environment["DATA_ROOT"])

    add_span(data_root, 1)
    first = run_make("retrain", environment)
    assert "Training from scratch: no blessed model" in logged(first)
    cycle1 = summary.latest_run_summary(config)
    assert cycle1.blessed and cycle1.pushed_model_dir
    assert cycle1.spans == [1]

    started = time.monotonic()
    idle = run_make("retrain", environment)
    assert "No new span: span-1 was already ingested. Nothing to do." in idle.stdout
    assert time.monotonic() - started < 60  # no pipeline run: nothing expensive
    assert summary.latest_run_summary(config).run_id == cycle1.run_id

    add_span(data_root, 2)
    second = run_make("retrain", environment)
    assert "Warm start from the latest blessed model's weights" in logged(second)
    cycle2 = summary.latest_run_summary(config)
    assert cycle2.spans == [1, 2]  # trained on the window of both spans, evaluated on span 2
    evaluated = tfma.load_eval_result(cycle2.evaluation_uri, model_name="baseline")
    assert evaluated.get_metrics_for_slice()["example_count"]["doubleValue"] == 100

    served_before = serving_versions(config)
    add_span(data_root, 3, swap_training_labels=True)
    third = run_make("retrain", environment)
    cycle3 = summary.latest_run_summary(config)
    assert f"Report: {Path(config.output_dir, 'reports')}" in third.stdout
    assert cycle3.spans == [2, 3]
    # Judged against the blessed model on the same span-3 eval images, and found worse.
    baseline = tfma.load_eval_result(cycle3.evaluation_uri, model_name="baseline")
    baseline_accuracy = baseline.get_metrics_for_slice()["binary_accuracy"]["doubleValue"]
    assert cycle3.metrics["binary_accuracy"] < baseline_accuracy - config.max_accuracy_drop
    assert not cycle3.blessed
    assert cycle3.pushed_model_dir is None
    assert serving_versions(config) == served_before

    table = history.format_table(history.history_rows(config))
    assert [line.split()[1] for line in table.splitlines()[1:]] == ["1", "1,2", "2,3"]


def test_a_second_cycle_does_not_start_while_one_holds_the_lock(environment):
    config = PipelineConfig.from_env(environment)
    lock_path = Path(config.output_dir, f"{config.pipeline_name}.retrain.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = subprocess.run([sys.executable, "-m", "pipeline.retrain"], cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=120,
                                env={**os.environ, **environment})
    assert result.returncode == 75
    assert "Another retraining cycle of retraining-test is running" in result.stderr
