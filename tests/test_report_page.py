"""The report's HTML pages, rendered from a run's results made by hand: what each section
shows, and names from the data (runs, paths, slices, file names) read as text, never as
markup. test_pipeline_e2e.py renders and opens real ones."""
from html.parser import HTMLParser

import pytest

from metadata.eval_predictions import Prediction
from metadata.runs import RunEvaluation
from reports import render
from reports.evaluation import Evaluation, ThresholdCheck
from reports.report import RunReport, comparison_summary

# A name that would run a script, if a page wrote it as markup.
HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
CHART = "data:image/png;base64,iVBORw0KGgo="
CHARTS = {name: CHART for name in ("slices", "confusion_matrix", "roc", "precision_recall",
                                   "calibration")}


class Page(HTMLParser):
    """The tags a page opens, its text, and its tables' rows as lists of cell texts
    (entities read back)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags, self.text, self.rows, self._in_cell = [], "", [], False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.rows[-1].append("")
            self._in_cell = True

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data):
        self.text += data
        if self._in_cell:
            self.rows[-1][-1] += data


def run_report(run_id: str, blessed: bool, accuracy: float) -> RunReport:
    cats = "label_name: cats " + HOSTILE
    matrices = [{"threshold": 0.25, "truePositives": 20.0, "falsePositives": 9.0},
                {"threshold": 0.5, "truePositives": 18.0, "falsePositives": 2.0,
                 "trueNegatives": 18.0, "falseNegatives": 2.0}]
    return RunReport(
        run=RunEvaluation(run_id=run_id, evaluation_uri=f"/runs/{HOSTILE}/Evaluator/7",
                          blessed=blessed, model_uri=f"/runs/{HOSTILE}/Trainer/6",
                          model_run_uri=None, span=3, skipped_run_ids=(f"{run_id}-{HOSTILE}",)),
        evaluation=Evaluation(
            validation_ok=blessed,
            metrics={"candidate": {
                "Overall": {"binary_accuracy": accuracy, "auc": 0.95, "example_count": 40.0},
                cats: {"binary_accuracy": 0.9, "auc": None, "example_count": 20.0}}},
            thresholds=[ThresholdCheck("auc", "Overall", "value", 0.95, ">= 0.5", True),
                        ThresholdCheck("binary_accuracy", cats, "value", 0.9, ">= 0.95", False)],
            plots={"candidate": {"confusionMatrixAtThresholds": {"matrices": matrices}}}),
        class_names=["cats", "dogs"],
        predictions=[Prediction(HOSTILE + ".jpg", "cats", "dogs", 0.875, b"no picture"),
                     Prediction("cat.2.jpg", "cats", "cats", 0.75, None)],
        training_curves={})


@pytest.fixture(scope="module")
def run_page() -> str:
    return render.run_page(run_report(f"run {HOSTILE}", True, 0.9), CHARTS)


def test_names_from_the_data_read_as_text_never_as_markup(run_page):
    page = Page(run_page)
    assert {"script", "span"} - set(page.tags) == {"script"}
    assert page.tags.count("img") == len(CHARTS) + 1  # the charts, and one mistake
    # Every name is on the page as written: run, skipped run, paths, slice and file.
    for name in (f"run {HOSTILE}", f"run {HOSTILE}-{HOSTILE}", f"/runs/{HOSTILE}/Evaluator/7",
                 f"/runs/{HOSTILE}/Trainer/6", f"label_name: cats {HOSTILE}",
                 f"{HOSTILE}.jpg"):
        assert name in page.text


def test_the_run_page_shows_verdict_thresholds_metrics_and_mistakes(run_page):
    page = Page(run_page)
    text = page.text
    assert 'id="verdict"' in run_page and "BLESSED: every threshold passed" in text
    # The failed threshold first, then the passed one.
    assert page.rows[:3] == [
        ["metric", "slice", "kind", "value", "bound", "result"],
        ["binary_accuracy", f"label_name: cats {HOSTILE}", "value", "0.900", ">= 0.95", "FAILED"],
        ["auc", "Overall", "value", "0.950", ">= 0.5", "passed"]]
    assert ["example_count", "40"] in page.rows and ["auc", "0.950"] in page.rows
    # Per slice: example count, accuracy, AUC, precision, recall; a metric undefined on
    # the slice, or not computed, reads n/a. (test_pipeline_e2e.py reads the markup so.)
    assert [f"label_name: cats {HOSTILE}", "20", "0.900", "n/a", "n/a", "n/a"] in page.rows
    assert "<tr><td>Overall</td><td>40</td><td>0.900</td><td>0.950</td>" in run_page
    assert "confusion matrix at threshold 0.5" in text
    assert "data span 3" in text and "No TensorBoard logs recorded for this model." in text
    assert "Most confidently wrong (1 of 1 mistakes in 2 eval images)" in text
    assert "true cats, predicted dogs (87.5%)" in text
    # The browser check puts its script after <head>.
    assert run_page.startswith("<!DOCTYPE html>") and run_page.count("<head>") == 1


def test_the_comparison_page_shows_both_verdicts_and_the_differences():
    first, second = run_report(f"first {HOSTILE}", True, 0.9), run_report("second", False, 0.5)
    page = Page(render.comparison_page(first, second, comparison_summary(first, second)[
        "difference"], CHART))
    assert "script" not in page.tags
    assert f"Comparison: first {HOSTILE} vs second" in page.text
    assert "BLESSED: every threshold passed" in page.text and "NOT BLESSED" in page.text
    assert ["Overall", "binary_accuracy", "0.900", "0.500", "-0.400"] in page.rows
