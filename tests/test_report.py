"""The report command's fast paths; the report itself is tested on a real pipeline run in
test_pipeline_e2e.py."""
import base64
import json

import pytest

from metadata import evaluation_results
from pipeline import definition
from pipeline.config import PipelineConfig
from reports import charts, cli, evaluation, paths, report, training
from tests import bad_inputs
from tests.helpers import encode_image


def test_report_names_are_safe_file_names():
    assert paths.report_stem("2026-11-26T23:49:37.675152", "a/b") == (
        "2026-11-26T23-49-37.675152_vs_a-b")


def test_a_picture_pillow_cannot_read_gets_a_placeholder_not_a_crash():
    # TF decodes it (ingestion accepts it); Pillow reads only GIF87a and GIF89a.
    unreadable = bad_inputs.gif(30, 20, signature=b"GIF80a")
    assert charts.thumbnail(unreadable) == charts.NO_PREVIEW
    svg = base64.b64decode(charts.NO_PREVIEW.split(",", 1)[1]).decode()
    assert "no preview" in svg
    assert charts.thumbnail(encode_image(300, 200)).startswith("data:image/jpeg;base64,")


def test_no_pipeline_run_yet_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OUTPUT_DIR", str(tmp_path))
    assert cli.main([]) == 1
    assert "No report: No pipeline run recorded" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()


def test_the_command_line_explains_itself(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    assert "--compare-with" in capsys.readouterr().out


def test_a_report_rewrite_that_fails_leaves_the_previous_one_whole(tmp_path):
    config = PipelineConfig(output_dir=str(tmp_path))
    report._write(config, ["run-1"], "<html>first</html>", {"blessed": True})
    html_path, json_path = paths.html_path(config, "run-1"), paths.json_path(config, "run-1")
    # A character UTF-8 cannot encode fails the write midway.
    with pytest.raises(UnicodeEncodeError):
        report._write(config, ["run-1"], "<html>second \udc80</html>", {"blessed": False})
    assert html_path.read_text() == "<html>first</html>"
    assert json.loads(json_path.read_text())["blessed"] is True
    assert sorted(path.name for path in html_path.parent.iterdir()) == [
        html_path.name, json_path.name]


def test_a_metric_undefined_on_a_slice_is_blanked_not_reported_as_a_number():
    # TFMA's numbers as it writes them: AUC 0.0 on a slice holding one class.
    metrics = {
        "candidate": {"Overall": {"auc": 0.93, "precision": 0.8, "auc_diff": 0.01},
                      "label_name: cats": {"binary_accuracy": 0.9, "auc": 0.0, "recall": 0.0,
                                           "precision": 0.0, "calibration": 0.0,
                                           "auc_diff": 0.0, "precision_diff": 0.0}},
        "baseline": {"Overall": {"auc": 0.92, "precision": 0.7},
                     "label_name: cats": {"auc": 0.0, "precision": 0.0}},
    }
    counts = {
        "candidate": {"Overall": {"positives": 20, "negatives": 20, "predicted_positives": 19},
                      "label_name: cats": {"positives": 0, "negatives": 20,
                                           "predicted_positives": 2}},
        "baseline": {"Overall": {"positives": 20, "negatives": 20, "predicted_positives": 18},
                     "label_name: cats": {"positives": 0, "negatives": 20,
                                          "predicted_positives": 0}},
    }
    blanked = evaluation.blank_undefined(metrics, counts)
    assert blanked["candidate"]["Overall"] == metrics["candidate"]["Overall"]
    # Precision is defined for the candidate (it predicted 2 dogs), not for the baseline.
    assert blanked["candidate"]["label_name: cats"] == {
        "binary_accuracy": 0.9, "auc": None, "recall": None, "precision": 0.0,
        "calibration": None, "auc_diff": None, "precision_diff": None}
    assert blanked["baseline"]["label_name: cats"] == {"auc": None, "precision": None}


def test_the_confusion_matrix_is_tfmas_counts_at_the_threshold_nearest_one_half():
    # As TFMA writes them: a matrix per threshold (TFMA's nearest to 0.5 is a little off
    # it), zero counts left out.
    plots = {"confusionMatrixAtThresholds": {"matrices": [
        {"threshold": 0.25, "truePositives": 20.0, "falsePositives": 9.0, "trueNegatives": 11.0},
        {"threshold": 0.5000001, "truePositives": 18.0, "trueNegatives": 20.0,
         "falseNegatives": 2.0},
        {"threshold": 0.75, "truePositives": 10.0, "trueNegatives": 20.0,
         "falseNegatives": 10.0}]}}
    assert evaluation.counts_at_decision_threshold(plots) == {
        "threshold": 0.5000001, "true_negatives": 20.0, "false_positives": 0.0,
        "false_negatives": 2.0, "true_positives": 18.0}


def pipeline_eval_config(with_baseline: bool):
    """The pipeline's eval config as TFX's Evaluator completes and writes it: beside a
    baseline, models named "candidate" and "baseline"; without, no change thresholds."""
    import tensorflow_model_analysis as tfma

    return tfma.utils.update_eval_config_with_defaults(
        definition.eval_config(PipelineConfig()), has_baseline=with_baseline, rubber_stamp=True)


@pytest.mark.parametrize("with_baseline", [False, True], ids=["first_run", "with_baseline"])
def test_the_report_lists_the_thresholds_tfma_checks(with_baseline):
    from tensorflow_model_analysis.metrics import metric_specs

    config = pipeline_eval_config(with_baseline)
    tfmas = metric_specs.metric_thresholds_from_metrics_specs(config.metrics_specs,
                                                              eval_config=config)
    ours = evaluation.configured_thresholds(
        evaluation_results.EvalConfig.FromString(config.SerializeToString()))
    candidate = "candidate" if with_baseline else ""
    assert sorted((name, kind == "change", spec.SerializeToString(), bound.SerializeToString())
                  for name, kind, spec, bound in ours) == sorted(
        (key.name, key.is_diff, spec.SerializeToString(), threshold.SerializeToString())
        for key, specs_and_thresholds in tfmas.items() if key.model_name == candidate
        for spec, threshold in specs_and_thresholds)
    assert [kind for _, kind, _, _ in ours] == (["value", "change"] if with_baseline
                                                else ["value"])


def test_metric_names_are_the_ones_tfma_gives():
    from tensorflow_model_analysis.metrics import metric_specs

    config = pipeline_eval_config(with_baseline=False)
    tfmas = {key.name for key, _, _ in metric_specs.keys_and_metrics_from_specs(
        config, config.metrics_specs)}
    ours = evaluation_results.EvalConfig.FromString(config.SerializeToString())
    assert {evaluation.metric_name(metric) for spec in ours.metrics_specs
            for metric in spec.metrics} == tfmas


def test_training_curves_are_read_from_kerass_event_files(tmp_path):
    import tensorflow as tf

    for phase, losses in (("train", [0.75, 0.5]), ("validation", [0.875, 0.625])):
        with tf.summary.create_file_writer(str(tmp_path / phase)).as_default():
            for epoch, loss in enumerate(losses):
                tf.summary.scalar("epoch_loss", loss, step=epoch)
                tf.summary.scalar("batch_loss", 9.0, step=epoch)  # not a curve
    assert training.read_training_curves(str(tmp_path)) == {
        "train": {"loss": [(0, 0.75), (1, 0.5)]},
        "validation": {"loss": [(0, 0.875), (1, 0.625)]}}
