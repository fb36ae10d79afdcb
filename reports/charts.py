"""The report's pictures, drawn with matplotlib and embedded as base64 data URIs so
the HTML file needs nothing else."""
from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # no display: files only
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from PIL import Image  # noqa: E402

from reports.training import Curves  # noqa: E402

# TFMA's calibration histogram has fine buckets; a reliability diagram wants a few.
CALIBRATION_BINS = 10
THUMBNAIL_PX = 160
NO_PREVIEW = "data:image/svg+xml;base64," + base64.b64encode(
    f'<svg xmlns="http://www.w3.org/2000/svg" width="{THUMBNAIL_PX}" height="{THUMBNAIL_PX}">'
    '<rect width="100%" height="100%" fill="#eee"/><text x="50%" y="50%" fill="#666" '
    'font-family="sans-serif" font-size="14" text-anchor="middle">no preview</text></svg>'
    .encode()).decode("ascii")


def confusion_matrix_chart(counts: dict[str, float], class_names: list[str]) -> str:
    """`counts`: true_negatives, false_positives, false_negatives, true_positives."""
    matrix = np.array([[counts["true_negatives"], counts["false_positives"]],
                       [counts["false_negatives"], counts["true_positives"]]])
    figure, axes = plt.subplots(figsize=(4, 3.6))
    axes.imshow(matrix, cmap="Blues")
    for (row, column), count in np.ndenumerate(matrix):
        axes.text(column, row, f"{count:.0f}", ha="center", va="center", fontsize=14,
                  color="white" if count > matrix.max() / 2 else "black")
    axes.set_xticks([0, 1], class_names)
    axes.set_yticks([0, 1], class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    return _data_uri(figure)


def roc_chart(curves: dict[str, tuple[list[float], list[float]]]) -> str:
    """`curves`: {model: (false positive rates, true positive rates)}."""
    figure, axes = plt.subplots(figsize=(4.2, 4))
    for model, (false_positive_rates, true_positive_rates) in curves.items():
        axes.plot(false_positive_rates, true_positive_rates, label=model)
    axes.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    _square_unit_axes(axes, "false positive rate", "true positive rate (recall)")
    return _data_uri(figure)


def precision_recall_chart(curves: dict[str, tuple[list[float], list[float]]]) -> str:
    """`curves`: {model: (recalls, precisions)}."""
    figure, axes = plt.subplots(figsize=(4.2, 4))
    for model, (recalls, precisions) in curves.items():
        axes.plot(recalls, precisions, label=model)
    _square_unit_axes(axes, "recall", "precision")
    return _data_uri(figure)


def calibration_chart(buckets: list[dict]) -> str:
    """A reliability diagram from TFMA's calibrationHistogramBuckets."""
    examples, labels, predictions = (np.zeros(CALIBRATION_BINS) for _ in range(3))
    for bucket in buckets:
        lower = float(bucket.get("lowerThresholdInclusive", 0.0))
        index = int(np.clip(np.floor(max(lower, 0.0) * CALIBRATION_BINS), 0,
                            CALIBRATION_BINS - 1))
        examples[index] += bucket.get("numWeightedExamples", 0.0)
        labels[index] += bucket.get("totalWeightedLabel", 0.0)
        predictions[index] += bucket.get("totalWeightedRefinedPrediction", 0.0)
    filled = examples > 0
    figure, axes = plt.subplots(figsize=(4.2, 4))
    axes.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    axes.plot(predictions[filled] / examples[filled], labels[filled] / examples[filled],
              "o-", label="model")
    counts = axes.twinx()
    counts.bar((np.arange(CALIBRATION_BINS) + 0.5) / CALIBRATION_BINS, examples,
               width=0.9 / CALIBRATION_BINS, alpha=0.2, color="grey")
    counts.set_ylabel("examples")
    _square_unit_axes(axes, "mean predicted probability (positive class)",
                      "fraction positive")
    return _data_uri(figure)


def training_chart(curves: Curves) -> str:
    """One panel per metric (loss, accuracy, learning rate...), train and validation."""
    metrics = sorted({metric for phase in curves.values() for metric in phase})
    figure, panels = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.2),
                                  squeeze=False)
    for axes, metric in zip(panels[0], metrics):
        for phase, phase_curves in curves.items():
            if metric in phase_curves:
                epochs, values = zip(*phase_curves[metric])
                axes.plot(np.array(epochs) + 1, values, "o-", label=phase)
        axes.set_title(metric.replace("_", " "))
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend()
    return _data_uri(figure)


def slice_chart(values: dict[str, dict[str, float | None]], metric: str) -> str:
    """Horizontal bars of one metric per slice, one bar per model or run.

    `values`: {model or run: {slice: value}}.
    """
    slices = list(next(iter(values.values())))
    height = 0.8 / len(values)
    figure, axes = plt.subplots(figsize=(7, 0.45 * len(slices) * len(values) + 1))
    positions = np.arange(len(slices))
    for offset, (series, by_slice) in enumerate(values.items()):
        numbers = [by_slice.get(name) or 0.0 for name in slices]
        axes.barh(positions + offset * height, numbers, height=height, label=series)
    axes.set_yticks(positions + height * (len(values) - 1) / 2, slices)
    axes.invert_yaxis()
    axes.set_xlim(0, 1)
    axes.set_xlabel(metric.replace("_", " "))
    axes.legend(loc="lower right")
    return _data_uri(figure)


def thumbnail(image: bytes) -> str:
    """A small JPEG of an encoded image, or NO_PREVIEW when Pillow cannot read it (TF
    decodes some files Pillow does not, e.g. a GIF signed "GIF80a"): a report never fails
    on a picture, and the gallery names the file beside it."""
    try:
        picture = Image.open(io.BytesIO(image)).convert("RGB")
        picture.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=85)
    except Exception:  # noqa: BLE001 - whatever Pillow raises, the placeholder stands in
        return NO_PREVIEW
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _square_unit_axes(axes, x_label: str, y_label: str) -> None:
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.legend(loc="lower right")


def _data_uri(figure) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=96)
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
