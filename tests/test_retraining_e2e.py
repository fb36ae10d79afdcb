"""Scheduled retraining through `make retrain`, on tiny generated spans.

Three cycles: span 1 gives a pushed model; span 2 gives a candidate compared with the
span-1 model; span 3, whose training labels are swapped, is trained but not blessed, and
the serving directory keeps what it had. A cycle without a new span does nothing.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow_model_analysis as tfma

from data.folders import SPAN_COMPLETE_MARKER
from data.generate import generate_dataset
from metadata.runs import latest_run_summary
from pipeline import history, registration
from pipeline.config import PipelineConfig
from tests.helpers import REPO_ROOT, full_log, run_make, serving_versions

pytestmark = pytest.mark.e2e


def logged(result: subprocess.CompletedProcess) -> str:
    """What the cycle showed, and its whole log."""
    return result.stdout + result.stderr + full_log(result.stdout)


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
        "TRAIN_EPOCHS": "16",  # 12 steps each
        "WARMUP_STEPS": "10",
        "BEAM_NUM_WORKERS": "2",
    }


def test_three_scheduled_cycles_bless_only_what_is_not_worse(environment):
    config = PipelineConfig.from_env(environment)
    data_root = Path(environment["DATA_ROOT"])

    add_span(data_root, 1)
    first = run_make("retrain", environment)
    assert "Training from scratch: no blessed model" in logged(first)
    cycle1 = latest_run_summary(config.metadata_path)
    assert cycle1.blessed and cycle1.pushed_model_dir
    assert cycle1.spans == [1]

    started = time.monotonic()
    idle = run_make("retrain", environment)
    assert (f"No new span: span-1 was trained by run {cycle1.run_id}, which completed. "
            "Nothing to do.") in idle.stdout
    assert time.monotonic() - started < 60  # no pipeline run: nothing expensive
    assert latest_run_summary(config.metadata_path).run_id == cycle1.run_id

    add_span(data_root, 2)
    second = run_make("retrain", environment)
    assert "Warm start from the latest blessed model's weights" in logged(second)
    cycle2 = latest_run_summary(config.metadata_path)
    assert cycle2.spans == [1, 2]  # trained on the window of both spans, evaluated on span 2
    evaluated = tfma.load_eval_result(cycle2.evaluation_uri, model_name="baseline")
    assert evaluated.get_metrics_for_slice()["example_count"]["doubleValue"] == 100

    served_before = serving_versions(config)
    add_span(data_root, 3, swap_training_labels=True)
    third = run_make("retrain", environment)
    cycle3 = latest_run_summary(config.metadata_path)
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


# A stand-in for the registered pipeline's runner, which `tfx run create` starts: it
# records its process id, then runs until killed (a second start ends at once).
STAND_IN_RUNNER = """import os, sys, time
if os.path.exists(os.environ["RUNNER_PID_FILE"]):
    sys.exit(0)
open(os.environ["RUNNER_PID_FILE"], "w").write(str(os.getpid()))
time.sleep(600)
"""


def test_a_killed_cycle_keeps_the_lock_while_its_pipeline_run_lives(tmp_path):
    (tmp_path / "data" / "span-1").mkdir(parents=True)
    (tmp_path / "data" / "span-1" / SPAN_COMPLETE_MARKER).touch()  # a complete drop
    runner, runner_pid = tmp_path / "runner.py", tmp_path / "runner.pid"
    runner.write_text(STAND_IN_RUNNER)
    registered = tmp_path / "tfx_cli_home" / "killed-cycle-test"
    registered.mkdir(parents=True)
    (registered / "pipeline_args.json").write_text(json.dumps(
        {"pipeline_name": "killed-cycle-test", "pipeline_dsl_path": str(runner)}))
    environment = {**os.environ, "SPANS": "true", "DATA_ROOT": str(tmp_path / "data"),
                   "OUTPUT_DIR": str(tmp_path / "outputs"),
                   "LOCAL_HOME": str(tmp_path / "tfx_cli_home"),
                   "PIPELINE_NAME": "killed-cycle-test", "RUNNER_PID_FILE": str(runner_pid)}
    # Registered with this code and these settings: the cycle runs the stand-in as it is.
    (registered / registration.FINGERPRINT_FILE).write_text(
        registration.fingerprint(PipelineConfig.from_env(environment)))
    cycle = subprocess.Popen([sys.executable, "-m", "pipeline.retrain"], cwd=REPO_ROOT,
                             env=environment)
    deadline = time.monotonic() + 300
    while not runner_pid.exists() or not runner_pid.read_text():
        assert time.monotonic() < deadline and cycle.poll() is None
        time.sleep(0.2)
    cycle.kill()  # as a cron timeout would: `tfx run create` and its run live on
    cycle.wait()
    try:
        second = subprocess.run([sys.executable, "-m", "pipeline.retrain"], cwd=REPO_ROOT,
                                env=environment, capture_output=True, text=True, timeout=300)
    finally:
        os.kill(int(runner_pid.read_text()), signal.SIGKILL)
    assert second.returncode == 75
    assert (f"Another run of pipeline killed-cycle-test is under way: process {cycle.pid} "
            "(a retraining cycle (make retrain), since ") in second.stderr
