"""metadata/: reading runs back from an MLMD store and the Evaluator's files, as TFX and
TFMA write them (a run recorded here by hand; test_pipeline_e2e.py reads real ones)."""
import math
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2
from tensorflow_model_analysis.proto import metrics_for_slice_pb2, validation_result_pb2
from tensorflow_model_analysis.slicer import slicer_lib
from tensorflow_model_analysis.writers import eval_config_writer

from metadata import evaluation_results
from metadata.runs import SpanIngestion, latest_run_summary, run_evaluation, span_ingestions
from metadata.store import component_states, newest_component_outputs, open_store, pipeline_runs
from pipeline import history
from pipeline.config import PipelineConfig
from pipeline.summary import main as summary_main
from pipeline.summary import summary_lines
from tests.helpers import REPO_ROOT, RecordedRun

PIPELINE = "test-pipeline"
RUN_ID = "2026-11-27T10:00:00.000001"


def write_evaluation(uri, with_baseline: bool) -> None:
    """TFMA's files for an evaluation: eval config, metrics and plots per slice (overall
    and one slice; per model, diffs and a sub key beside a baseline), one failed
    threshold."""
    candidate, baseline = ("candidate", "baseline") if with_baseline else ("", None)
    specs = [tfma.ModelSpec(name=candidate, label_key="label")]
    if baseline:
        specs.append(tfma.ModelSpec(name=baseline, label_key="label", is_baseline=True))
    uri.mkdir(parents=True)
    (uri / "eval_config.json").write_text(eval_config_writer._serialize_eval_run(
        tfma.EvalConfig(model_specs=specs), "data", "tfrecord",
        {spec.name: "/models/" + spec.name for spec in specs}))

    def metrics(slice_key, accuracy):
        proto = metrics_for_slice_pb2.MetricsForSlice(
            slice_key=slicer_lib.serialize_slice_key(slice_key))

        def add(model_name, name, value):
            entry = proto.metric_keys_and_values.add()
            entry.key.name, entry.key.model_name = name, model_name
            entry.value.double_value.value = value
            return entry.key

        add(candidate, "binary_accuracy", accuracy)
        add("", "example_count", 40)  # of no model in particular
        add(candidate, "precision", 0.5).sub_key.class_id.value = 1  # of one class only
        add(candidate, "recall", float("nan"))  # what TFMA could not compute
        if baseline:
            add(baseline, "binary_accuracy", 0.9)
            add(candidate, "binary_accuracy", accuracy - 0.9).is_diff = True
        return proto.SerializeToString()

    def plots(slice_key, true_positives):
        proto = metrics_for_slice_pb2.PlotsForSlice(
            slice_key=slicer_lib.serialize_slice_key(slice_key))
        for model_name in [candidate, baseline] if baseline else [candidate]:
            entry = proto.plot_keys_and_values.add()
            entry.key.model_name = model_name
            matrix = entry.value.confusion_matrix_at_thresholds.matrices.add(
                threshold=0.5, true_positives=true_positives, false_negatives=2.0)
            matrix.precision = float("nan")  # TFMA writes undefined values so
            entry.value.calibration_histogram_buckets.buckets.add(
                upper_threshold_exclusive=0.5).num_weighted_examples.value = 3.0
        return proto.SerializeToString()

    with tf.io.TFRecordWriter(str(uri / "plots-00000-of-00001.tfrecord")) as writer:
        writer.write(plots((), 7.0))
        writer.write(plots((("label_name", "dogs"),), 0.0))
    with tf.io.TFRecordWriter(str(uri / "metrics-00000-of-00002.tfrecord")) as writer:
        writer.write(metrics((("label_name", "cats"),), 0.6))
    with tf.io.TFRecordWriter(str(uri / "metrics-00001-of-00002.tfrecord")) as writer:
        writer.write(metrics((), 0.8))
    validation = validation_result_pb2.ValidationResult(validation_ok=False)
    failure = validation.metric_validations_per_slice.add().failures.add()
    failure.metric_key.name = "binary_accuracy"
    # As TFMA writes a value threshold's failure: no message.
    failure.metric_threshold.value_threshold.lower_bound.value = 0.9
    failure.metric_value.double_value.value = 0.8
    with tf.io.TFRecordWriter(str(uri / "validations.tfrecord")) as writer:
        writer.write(validation.SerializeToString())


@pytest.mark.parametrize("with_baseline", [False, True], ids=["first_run", "with_baseline"])
def test_evaluation_results_are_tfmas_own_reading(tmp_path, with_baseline):
    write_evaluation(tmp_path / "evaluation", with_baseline)
    uri = str(tmp_path / "evaluation")
    tfmas = tfma.load_eval_result(uri).get_metrics_for_slice()
    ours = evaluation_results.overall_metrics(uri)
    # A metric TFMA could not compute reads as a float NaN (TFMA's JSON: the string "NaN"),
    # which the run's summary and history can print.
    assert tfmas.pop("recall") == {"doubleValue": "NaN"} and math.isnan(ours.pop("recall"))
    assert ours == {name: value["doubleValue"] for name, value in tfmas.items()
                    if "_diff" not in name}
    assert ours == {"binary_accuracy": 0.8, "example_count": 40}
    [tfmas_failure] = [failure for per_slice in
                       tfma.load_validation_result(uri).metric_validations_per_slice
                       for failure in per_slice.failures]
    assert evaluation_results.failed_thresholds(uri) == [
        f"{tfmas_failure.metric_key.name} {tfmas_failure.metric_value.double_value.value:.3f} "
        "is below the lower bound "
        f"{tfmas_failure.metric_threshold.value_threshold.lower_bound.value:g}"]


@pytest.mark.parametrize("with_baseline", [False, True], ids=["first_run", "with_baseline"])
def test_metrics_and_plots_by_slice_are_what_tfmas_loader_gives(tmp_path, with_baseline):
    write_evaluation(tmp_path / "evaluation", with_baseline)
    uri = str(tmp_path / "evaluation")
    candidate, baseline = evaluation_results.model_names(evaluation_results.eval_config(uri))
    assert (candidate, baseline) == (("candidate", "baseline") if with_baseline else ("", None))
    for model_name in [candidate, baseline] if baseline else [candidate]:
        # TFMA's loader takes None for the only model; what the report shows is
        # output "" and sub key "" of each slice.
        loaded = tfma.load_eval_result(uri, model_name=model_name or None)
        assert evaluation_results.metrics_by_slice(uri, model_name) == {
            slice_key: by_output[""][""] for slice_key, by_output in loaded.slicing_metrics}
        assert evaluation_results.plots_by_slice(uri, model_name) == {
            slice_key: by_output[""][""] for slice_key, by_output in loaded.plots}
    assert evaluation_results.plots_by_slice(uri, candidate)[()][
        "confusionMatrixAtThresholds"]["matrices"][0]["precision"] == "NaN"


def test_results_are_read_with_tfmas_own_classes_whichever_is_imported_first():
    # Here TFMA came first (this file imports it).
    assert (evaluation_results.EvalConfig, evaluation_results.MetricsForSlice,
            evaluation_results.PlotsForSlice, evaluation_results.ValidationResult) == (
        tfma.EvalConfig, metrics_for_slice_pb2.MetricsForSlice,
        metrics_for_slice_pb2.PlotsForSlice, validation_result_pb2.ValidationResult)
    # A process that reads results first, then imports TFMA, gets the whole package.
    script = ("from metadata import evaluation_results\n"
              "import tensorflow_model_analysis as tfma\n"
              "print(evaluation_results.EvalConfig is tfma.EvalConfig,\n"
              "      evaluation_results.ValidationResult\n"
              "      is tfma.proto.validation_result_pb2.ValidationResult)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["True", "True"]


@pytest.fixture
def config(tmp_path):
    """A pipeline whose MLMD store holds one complete run."""
    config = PipelineConfig(pipeline_name=PIPELINE, output_dir=str(tmp_path))
    Path(config.metadata_path).parent.mkdir(parents=True)
    run = RecordedRun(config.metadata_path, PIPELINE, RUN_ID)
    write_evaluation(tmp_path / "Evaluator" / "evaluation", with_baseline=False)
    examples = run.artifact("Examples", "/root/ImageExampleGen/examples/1", span=2)
    run.execution("ImageExampleGen", outputs={"examples": examples})
    transformed = run.artifact("Examples", "/root/Transform/transformed_examples/2")
    graph = run.artifact("TransformGraph", "/root/Transform/transform_graph/2")
    run.execution("Transform", inputs={"examples": examples},
                  outputs={"transformed_examples": transformed, "transform_graph": graph})
    model = run.artifact("Model", "/root/Trainer/model/3")
    model_run = run.artifact("ModelRun", "/root/Trainer/model_run/3")
    run.execution("Trainer", inputs={"examples": transformed},
                  outputs={"model": model, "model_run": model_run})
    evaluation = run.artifact("ModelEvaluation", str(tmp_path / "Evaluator" / "evaluation"))
    blessing = run.artifact("ModelBlessing", "/root/Evaluator/blessing/4", blessed=1)
    run.execution("Evaluator", inputs={"examples": examples, "model": model},
                  outputs={"evaluation": evaluation, "blessing": blessing})
    pushed = run.artifact("PushedModel", "/root/Pusher/pushed_model/5", pushed=1,
                          pushed_destination="/serving/17")
    run.execution("Pusher", inputs={"model": model, "model_blessing": blessing},
                  outputs={"pushed_model": pushed}, state=metadata_store_pb2.Execution.CACHED)
    return config


def test_a_run_is_summarized_from_its_artifacts(config, tmp_path):
    summary = latest_run_summary(config.metadata_path)
    assert summary.run_id == RUN_ID
    assert summary.spans == [2]
    assert summary.blessed
    # A metric TFMA could not compute is printed as such, not a crash of `make pipeline`.
    assert "recall nan" in "\n".join(summary_lines(summary))
    assert math.isnan(summary.metrics.pop("recall"))
    assert summary.metrics == {"binary_accuracy": 0.8, "example_count": 40}
    assert summary.failed_thresholds == ["binary_accuracy 0.800 is below the lower bound 0.9"]
    assert summary.pushed_model_dir == "/serving/17"
    assert summary.evaluation_uri == str(tmp_path / "Evaluator" / "evaluation")
    assert span_ingestions(config.metadata_path) == [SpanIngestion(2, RUN_ID, run_completed=True)]


def test_a_span_ingested_by_a_run_that_did_not_complete_is_not_trained(config):
    """ExampleGen publishes its examples before the Trainer starts: a run that failed
    after ingestion, or was killed (its execution still RUNNING), ingested its span and
    trained nothing."""
    failed = RecordedRun(config.metadata_path, PIPELINE, "2026-11-28T10:00:00.000001")
    examples = failed.artifact("Examples", "/root/ImageExampleGen/examples/6", span=3)
    failed.execution("ImageExampleGen", outputs={"examples": examples})
    failed.execution("Transform", inputs={"examples": examples},
                     state=metadata_store_pb2.Execution.FAILED)
    killed = RecordedRun(config.metadata_path, PIPELINE, "2026-11-29T10:00:00.000001")
    killed.execution("ImageExampleGen", outputs={"examples": examples},
                     state=metadata_store_pb2.Execution.CACHED)
    killed.execution("Trainer", inputs={"examples": examples},
                     state=metadata_store_pb2.Execution.RUNNING)
    assert span_ingestions(config.metadata_path) == [
        SpanIngestion(2, RUN_ID, run_completed=True),
        SpanIngestion(3, "2026-11-28T10:00:00.000001", run_completed=False),
        SpanIngestion(3, "2026-11-29T10:00:00.000001", run_completed=False)]


def test_a_runs_evaluation_is_found_by_run_id_or_by_its_path(config, tmp_path):
    evaluation_uri = str(tmp_path / "Evaluator" / "evaluation")
    for run in (None, RUN_ID, evaluation_uri):
        evaluation = run_evaluation(config.metadata_path, run)
        assert (evaluation.run_id, evaluation.evaluation_uri, evaluation.blessed) == (
            RUN_ID, evaluation_uri, True)
        assert (evaluation.model_uri, evaluation.model_run_uri, evaluation.span) == (
            "/root/Trainer/model/3", "/root/Trainer/model_run/3", 2)
    with pytest.raises(LookupError, match="No pipeline run 'no-such-run'"):
        run_evaluation(config.metadata_path, "no-such-run")


def test_components_are_found_by_their_id(config):
    store = open_store(config.metadata_path)
    assert component_states(store, RUN_ID, PIPELINE) == {
        "ImageExampleGen": "COMPLETE", "Transform": "COMPLETE", "Trainer": "COMPLETE",
        "Evaluator": "COMPLETE", "Pusher": "CACHED"}
    outputs = newest_component_outputs(store, PIPELINE, "Transform")
    assert {key: artifact.uri for key, artifact in outputs.items()} == {
        "transformed_examples": "/root/Transform/transformed_examples/2",
        "transform_graph": "/root/Transform/transform_graph/2"}


def test_history_is_one_row_per_run(config):
    table = history.format_table(history.history_rows(config))
    assert [line.split() for line in table.splitlines()] == [
        ["run", "spans", "eval", "accuracy", "blessed", "pushed", "version"],
        [RUN_ID, "2", "0.800", "yes", "17"]]


def test_no_store_yet_is_a_lookup_error_and_creates_nothing(tmp_path):
    with pytest.raises(LookupError, match="No pipeline run recorded"):
        latest_run_summary(str(tmp_path / "metadata.sqlite"))
    assert span_ingestions(str(tmp_path / "metadata.sqlite")) == []
    assert not list(tmp_path.iterdir())


def test_reading_runs_imports_neither_tensorflow_nor_tfma(config):
    script = (f"import sys\nfrom pipeline import history, summary\nfrom metadata import runs\n"
              f"runs.latest_run_summary({config.metadata_path!r})\n"
              "print(sorted(m for m in ('tensorflow', 'tensorflow_model_analysis') "
              "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def record_failed_run(config, run_id: str) -> None:
    """A run that ingested, then failed in Transform: no evaluation, no push."""
    failed = RecordedRun(config.metadata_path, PIPELINE, run_id)
    examples = failed.artifact("Examples", "/root/ImageExampleGen/examples/9", span=3)
    failed.execution("ImageExampleGen", outputs={"examples": examples})
    failed.execution("Transform", inputs={"examples": examples},
                     state=metadata_store_pb2.Execution.FAILED)


def test_the_summary_and_report_fall_back_to_the_newest_complete_run(config):
    failed_run = "2026-11-28T10:00:00.000001"
    record_failed_run(config, failed_run)
    latest = latest_run_summary(config.metadata_path)
    assert (latest.run_id, latest.skipped_run_ids) == (RUN_ID, (failed_run,))
    assert summary_lines(latest)[:2] == [
        f"Skipped run {failed_run}: it did not complete (failed, killed or still running).",
        f"Run {RUN_ID}: model BLESSED."]
    evaluation = run_evaluation(config.metadata_path)
    assert (evaluation.run_id, evaluation.skipped_run_ids) == (RUN_ID, (failed_run,))
    assert [row[0] for row in history.history_rows(config)] == [RUN_ID, failed_run]


def test_runs_are_ordered_as_recorded_whatever_the_clock_said(config):
    later_run = "2026-11-28T10:00:00.000001"
    record_failed_run(config, later_run)
    # The later run was recorded with the clock stepped back a day.
    with sqlite3.connect(config.metadata_path) as database:
        database.execute("UPDATE Context SET create_time_since_epoch = "
                         "create_time_since_epoch - 86400000 WHERE name = ?", (later_run,))
    assert [run.name for run in pipeline_runs(open_store(config.metadata_path))] == [
        RUN_ID, later_run]


@pytest.mark.parametrize("damage, message", [
    (b"", "is empty or not an MLMD store"),
    (b"not a database" * 100, "cannot be read (file is not a database): corrupt"),
], ids=["empty", "corrupt"])
def test_a_corrupt_or_empty_store_is_one_line_naming_the_file(config, damage, message,
                                                               capsys, monkeypatch):
    Path(config.metadata_path).write_bytes(damage)
    monkeypatch.setenv("OUTPUT_DIR", config.output_dir)
    monkeypatch.setenv("PIPELINE_NAME", PIPELINE)
    for entry_point in (history.main, summary_main):
        assert entry_point() == 1
        [line] = capsys.readouterr().err.splitlines()
        assert f"{config.metadata_path} {message}" in line
    with pytest.raises(LookupError, match=re.escape(message)):
        run_evaluation(config.metadata_path)
    with pytest.raises(LookupError, match=re.escape(message)):  # not "no span ingested yet"
        span_ingestions(config.metadata_path)


def test_a_store_locked_by_another_process_is_named_without_mlmds_long_wait(
        config, capsys, monkeypatch):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time\n"
         f"database = sqlite3.connect({config.metadata_path!r}, isolation_level=None)\n"
         "database.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\ntime.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        monkeypatch.setattr("metadata.store.LOCK_WAIT_S", 0.5)
        monkeypatch.setenv("OUTPUT_DIR", config.output_dir)
        monkeypatch.setenv("PIPELINE_NAME", PIPELINE)
        started = time.monotonic()
        assert history.main() == 1
        assert time.monotonic() - started < 5  # MLMD's own wait: ~40 s, then a raw error
        [line] = capsys.readouterr().err.splitlines()
        assert f"{config.metadata_path} is locked by another process" in line
    finally:
        holder.kill()
        holder.wait()
