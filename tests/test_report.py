"""The report command's fast paths; the report itself is tested on a real pipeline run in
test_pipeline_e2e.py."""
import base64
import json

import pytest

from pipeline.config import PipelineConfig
from reports import charts, cli, evaluation, paths, report
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
