"""The whole pipeline through `make pipeline` (TFX CLI, local engine) on small generated data.

The shared blessed run (conftest's `blessed_run`) trains, evaluates and pushes (a second
`make pipeline` started beside it exits at once); a rerun, with an unreachable accuracy
threshold, reuses the cached upstream components and pushes nothing.
"""
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import tensorflow as tf

import tensorflow_model_analysis as tfma

from metadata.runs import latest_run_summary
from models import features
from pipeline.config import PipelineConfig
from reports import paths as report_paths
from reports.report import GALLERY_SIZE
from tests.report_checks import browser_checks
from tests.helpers import (CORRUPT_FILE, REPO_ROOT, component_outputs, execution_states,
                           full_log, run_make)

pytestmark = pytest.mark.e2e

# Components whose inputs do not change between the two runs.
UPSTREAM_COMPONENTS = ["ImageExampleGen", "StatisticsGen", "SchemaGen", "Transform", "Trainer"]
EVAL_IMAGES = 100  # test_set of the blessed run: 50 cats + 50 dogs


def test_a_second_run_beside_the_first_exits_at_once_naming_it(blessed_run):
    beside = blessed_run["run_beside"]
    assert beside.returncode != 0 and "Error 75" in beside.stderr
    assert "Another run of pipeline e2e-test is under way: process " in beside.stderr
    assert "(make pipeline, since " in beside.stderr


def test_the_console_has_a_line_per_stage_and_the_log_file_the_rest(blessed_run):
    """What a person watching `make pipeline` reads: each component's time and result, no
    TensorFlow or Beam log lines; those are in the log file named first."""
    stdout = blessed_run["stdout"]
    expected = {
        "ImageExampleGen": r"200 train \+ 100 eval images ingested, 1 rejected \(listed in "
                           r".*ingestion_report\.json\)",
        "StatisticsGen": r"statistics of 200 train \+ 100 eval examples",
        "ExampleValidator": r"no anomalies",
        "Transform": r"200 train \+ 100 eval examples transformed",
        "Trainer": r"\d+ of 16 epochs \(\d+ steps\).*; eval accuracy [01]\.\d{3}",
        "Evaluator": r"accuracy [01]\.\d{3}, AUC [01]\.\d{3}: BLESSED",
        "Pusher": "pushed to " + re.escape(blessed_run['summary'].pushed_model_dir),
    }
    for component, result in expected.items():
        assert re.search(rf"^  {component} +(\d+ s|\d+ min \d\d s)  {result}", stdout,
                         re.MULTILINE), (component, stdout)
    assert "cuda" not in stdout.lower() and "Running launcher for node_info" not in stdout
    assert "Running launcher for node_info" in full_log(stdout)


def test_a_successful_run_removes_backups_no_training_will_resume(blessed_run):
    assert not blessed_run["stale_backup"].exists()


def test_every_input_file_is_written_or_reported_rejected(blessed_run):
    examples_dir = Path(component_outputs(blessed_run["config"], blessed_run["summary"].run_id,
                                          "ImageExampleGen")["examples"].uri)
    report = json.loads((examples_dir / "ingestion_report.json").read_text())
    for split, folder in [("train", "training_set"), ("eval", "test_set")]:
        files_on_disk = len(list((blessed_run["data_root"] / folder).glob("*/*")))
        records = sum(1 for _ in tf.data.TFRecordDataset(
            [str(path) for path in (examples_dir / f"Split-{split}").iterdir()],
            compression_type="GZIP"))
        rejected = report["splits"][split]["rejected_files"]
        assert records == files_on_disk - len(rejected)
    assert [entry["file"] for entry in report["splits"]["train"]["rejected_files"]] == [
        CORRUPT_FILE]


def test_a_blessed_model_is_pushed_and_classifies_a_jpeg_from_disk(blessed_run):
    run = blessed_run["summary"]
    assert run.blessed
    assert run.pushed_model_dir and Path(run.pushed_model_dir).parent == Path(
        blessed_run["config"].serving_model_dir)
    assert f"Pushed to {run.pushed_model_dir}" in blessed_run["stdout"]

    model = tf.saved_model.load(run.pushed_model_dir)
    jpeg = next((blessed_run["data_root"] / "test_set" / "dogs").glob("*.jpg")).read_bytes()
    outputs = model.signatures[features.IMAGE_BYTES_SIGNATURE](
        **{features.IMAGE_BYTES_INPUT: tf.constant([jpeg, b"", jpeg[:len(jpeg) // 2]])})
    assert outputs[features.PREDICTED_LABEL_KEY].numpy()[0].decode() in ("cats", "dogs")
    assert float(tf.reduce_sum(outputs[features.PROBABILITIES_KEY][0])) == pytest.approx(1.0)
    # A bad item in the batch costs the others nothing, and says what is wrong with it.
    assert [error.decode() for error in outputs[features.ERROR_KEY].numpy()] == [
        "", "empty input", "corrupt or truncated image data"]


def test_tfma_metrics_cover_the_eval_split(blessed_run):
    metrics = blessed_run["summary"].metrics
    assert metrics["example_count"] == EVAL_IMAGES
    assert 0.0 <= metrics["binary_accuracy"] <= 1.0


def run_report_cli(environment: dict[str, str], *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "cats-dogs-report"), *arguments],
                          capture_output=True, text=True, env={**os.environ, **environment},
                          timeout=600, cwd=REPO_ROOT)


def test_the_pipeline_writes_a_report_and_its_summary_matches_tfma(blessed_run):
    run, config = blessed_run["summary"], blessed_run["config"]
    html = report_paths.html_path(config, run.run_id)
    assert f"Report: {html}" in blessed_run["stdout"]
    report = json.loads(report_paths.json_path(config, run.run_id).read_text())
    assert report["run_id"] == run.run_id and report["blessed"] is True

    tfma_result = tfma.load_eval_result(run.evaluation_uri)
    slices = {key: metrics for key, metrics in tfma_result.get_metrics_for_all_slices().items()}
    assert {feature for key in slices for feature, _ in key} == {
        features.LABEL_NAME_KEY, features.SIZE_BUCKET_KEY, features.ORIENTATION_KEY}
    assert set(report["metrics"]["candidate"]) == {"Overall"} | {
        ", ".join(f"{feature}: {value}" for feature, value in key) for key in slices if key}
    overall = report["metrics"]["candidate"]["Overall"]
    for name, value in slices[()].items():
        assert overall[name] == pytest.approx(float(value["doubleValue"]))
    matrix = report["confusion_matrix"]
    assert sum(matrix[k] for k in ("true_negatives", "false_positives", "false_negatives",
                                   "true_positives")) == overall["example_count"] == EVAL_IMAGES
    assert matrix["true_positives"] + matrix["true_negatives"] == pytest.approx(
        overall["binary_accuracy"] * EVAL_IMAGES)
    assert {(c["metric"], c["slice"], c["kind"]) for c in report["thresholds"]} >= {
        ("binary_accuracy", "Overall", "value")}
    assert all(c["passed"] for c in report["thresholds"])
    # The Evaluator's per-example predictions (the gallery) agree with TFMA's counts.
    assert report["eval_examples"] == EVAL_IMAGES
    assert report["mistakes"] == matrix["false_positives"] + matrix["false_negatives"]
    mistakes = report["most_confidently_wrong"]
    assert len(mistakes) == min(report["mistakes"], GALLERY_SIZE)
    assert all(m["predicted_label"] != m["true_label"] for m in mistakes)
    assert [m["confidence"] for m in mistakes] == sorted(
        (m["confidence"] for m in mistakes), reverse=True)


def test_metrics_undefined_on_a_slice_read_n_a(blessed_run):
    run, config = blessed_run["summary"], blessed_run["config"]
    metrics = json.loads(report_paths.json_path(config, run.run_id).read_text())["metrics"]
    cats, dogs = (metrics["candidate"][f"label_name: {label}"] for label in ("cats", "dogs"))
    # One class per slice: no AUC; no positive (dog) among the cats: no recall either.
    assert cats["auc"] is None and dogs["auc"] is None and cats["recall"] is None
    assert cats["binary_accuracy"] is not None
    html = report_paths.html_path(config, run.run_id).read_text()
    assert f"<tr><td>label_name: cats</td><td>{EVAL_IMAGES // 2}</td>" in html
    cats_row = html.split("<tr><td>label_name: cats</td>", 1)[1].split("</tr>", 1)[0]
    assert cats_row.count("<td>n/a</td>") >= 2  # auc, recall


def test_the_report_renders_in_a_browser(blessed_run, tmp_path):
    html = report_paths.html_path(blessed_run["config"], blessed_run["summary"].run_id)
    checks = browser_checks(html, tmp_path)
    assert checks["errors"] == []
    assert len(checks["images"]) >= 6 and all(image["ok"] for image in checks["images"])
    assert checks["verdict"].startswith("BLESSED")
    assert checks["screenshot"].stat().st_size > 10_000


def test_the_report_reads_the_run_without_tensorflow(blessed_run):
    """The report reads what the run wrote; loading TensorFlow or TFMA would cost seconds."""
    script = ("import sys\nfrom reports import cli\n"
              f"assert cli.main([{blessed_run['summary'].run_id!r}]) == 0\n"
              "print(sorted(m for m in ('tensorflow', 'tensorflow_model_analysis') "
              "if m in sys.modules))")
    result = subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "python"), "-c", script],
                            capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
                            env={**os.environ, **blessed_run["environment"]})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_missing_run_gives_a_clear_message_and_fails(blessed_run):
    result = run_report_cli(blessed_run["environment"], "no-such-run")
    assert result.returncode != 0
    assert "No pipeline run 'no-such-run'" in result.stderr


@pytest.fixture(scope="module")
def rejected_rerun(blessed_run):
    """The blessed run's pipeline run again with an accuracy threshold no model meets."""
    serving_dir = Path(blessed_run["config"].serving_model_dir)
    versions_before = sorted(path.name for path in serving_dir.iterdir())
    environment = {**blessed_run["environment"], "MIN_ACCURACY": "1.0"}
    result = run_make("pipeline", environment)
    config = PipelineConfig.from_env(environment)
    return {"config": config, "stdout": result.stdout, "versions_before": versions_before,
            "summary": latest_run_summary(config.metadata_path)}


def test_rerun_with_unreachable_threshold_is_cached_and_pushes_nothing(blessed_run,
                                                                       rejected_rerun):
    first, second = blessed_run["summary"], rejected_rerun["summary"]
    # The same model is evaluated again; an accuracy of 1.0 would make the bound reachable.
    assert first.metrics["binary_accuracy"] < 1.0
    assert second.run_id != first.run_id
    assert not second.blessed
    assert second.pushed_model_dir is None
    assert "Nothing pushed" in rejected_rerun["stdout"]
    assert any("binary_accuracy" in failure for failure in second.failed_thresholds)
    serving_dir = Path(rejected_rerun["config"].serving_model_dir)
    assert sorted(path.name for path in serving_dir.iterdir()) == rejected_rerun["versions_before"]
    states = execution_states(rejected_rerun["config"], second.run_id)
    assert {name: states[name] for name in UPSTREAM_COMPONENTS} == {
        name: "CACHED" for name in UPSTREAM_COMPONENTS}


def test_two_runs_compare_side_by_side(blessed_run, rejected_rerun):
    """The blessed run beside the rejected rerun."""
    config = blessed_run["config"]
    first, second = blessed_run["summary"].run_id, rejected_rerun["summary"].run_id
    assert first != second
    result = run_report_cli(blessed_run["environment"], first, "--compare-with", second)
    assert result.returncode == 0, result.stderr[-3000:]
    comparison = json.loads(report_paths.json_path(config, first, second).read_text())
    assert [run["blessed"] for run in comparison["runs"]] == [True, False]
    assert "Overall" in comparison["difference"]
    html = report_paths.html_path(config, first, second).read_text()
    assert "NOT BLESSED" in html and "BLESSED: every threshold passed" in html
