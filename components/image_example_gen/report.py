"""The ingestion report: `ingestion_report.json` at the root of the output Examples
artifact (next to `Split-train/` and `Split-eval/`), accounting for every input file::

    {
      "input_base": "...",
      "class_names": ["cats", "dogs"],
      "splits": {
        "train": {
          "split_folder": "training_set",
          "seen": 11, "written": 8, "rejected": 2, "ignored": 1,
          "classes": {"cats": {"seen": 6, "written": 4, "rejected": 1, "ignored": 1}, ...},
          "rejected_files": [{"file": "cats/bad.jpg", "class": "cats",
                              "reason": "not a JPEG, PNG, GIF or BMP image"}],
          "ignored_files": [{"file": "cats/.DS_Store", "class": "cats",
                             "reason": "hidden or system file"}],
          "overlapping": 0, "overlapping_files": []
        },
        "eval": {
          ...
          "overlapping": 1,
          "overlapping_files": [{"file": "cats/cat.102.jpg", "class": "cats",
                                 "same_as": [{"split": "train", "file": "cats/cat.1.jpg"}]}]
        }
      }
    }

Per split and per class `seen == written + rejected + ignored`; files in a folder that
is not a class are ignored and count in their split's totals only. Per split `written`
equals the number of records written to that split. (If an `output_config` re-splits a
single input split by hash, the report stays keyed by the *input* split.) A file whose
name is not UTF-8 is listed by the `repr` of its bytes (`b'cats/caf\\xe9.jpg'`).
`overlapping` counts the split's written files whose bytes (by SHA-256) are those of a
file written to another split: a leak between training and evaluation, whatever the
names or links.

The Beam transform writes one outcome line per file (`outcome_line`); the executor reads
them back into this report once the examples are written.
"""
import collections
import json
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import tensorflow as tf
from absl import logging

REPORT_FILE_NAME = "ingestion_report.json"
# What became of a file: written as an example, rejected after reading it (a reason),
# or ignored unread (a reason: see layout.ignore_reason).
WRITTEN, REJECTED, IGNORED = "written", "rejected", "ignored"
_COUNTS = ("seen", WRITTEN, REJECTED, IGNORED)


def outcome_line(file_name: str, class_name: str, outcome: str,
                 reason: Optional[str] = None, content_sha256: Optional[str] = None) -> str:
    """One file's outcome, as a JSON line: a reason for a file not written, the digest
    of its bytes for a file written."""
    record = {"file": file_name, "class": class_name, "outcome": outcome}
    if reason is not None:
        record["reason"] = reason
    if content_sha256 is not None:
        record["sha256"] = content_sha256
    return json.dumps(record)


def read_outcomes(prefix: str) -> Iterable[Dict[str, Any]]:
    """The outcome lines of the files whose names start with `prefix`."""
    for path in sorted(tf.io.gfile.glob(prefix + "*")):
        with tf.io.gfile.GFile(path, "r") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)


def build_split_report(
    split_folder: str,
    class_names: Sequence[str],
    outcomes: Iterable[Mapping[str, Any]],
) -> Dict[str, Any]:
    """Counts per split and per class (seen = written + rejected + ignored), and the files
    not written with their reasons."""
    totals = collections.Counter()
    classes = {name: collections.Counter() for name in class_names}
    not_written = {REJECTED: [], IGNORED: []}
    for outcome in outcomes:
        kind = outcome["outcome"]
        for counter in (totals, classes.get(outcome["class"], collections.Counter())):
            counter["seen"] += 1
            counter[kind] += 1
        if kind != WRITTEN:
            not_written[kind].append(
                {"file": outcome["file"], "class": outcome["class"], "reason": outcome["reason"]}
            )
    return {
        "split_folder": split_folder,
        **{key: totals[key] for key in _COUNTS},
        "classes": {name: {key: c[key] for key in _COUNTS} for name, c in classes.items()},
        "rejected_files": sorted(not_written[REJECTED], key=lambda r: r["file"]),
        "ignored_files": sorted(not_written[IGNORED], key=lambda r: r["file"]),
    }


def build_report(
    input_base: str,
    class_names: Sequence[str],
    split_folders: Mapping[str, str],
    outcome_prefixes: Mapping[str, str],
    listed_counts: Mapping[str, Mapping[str, int]],
) -> Dict[str, Any]:
    """The whole report, from each split's outcome lines (under `outcome_prefixes`, by
    split name). Raises RuntimeError when the files read are not those the layout scan
    listed (`listed_counts`, by split and class): files changed during ingestion."""
    report = {"input_base": input_base, "class_names": list(class_names), "splits": {}}
    outcomes = {split_name: list(read_outcomes(outcome_prefixes[split_name]))
                for split_name in split_folders}
    for split_name, split_folder in split_folders.items():
        split_report = build_split_report(split_folder, class_names, outcomes[split_name])
        read = {name: c["seen"] - c[IGNORED] for name, c in split_report["classes"].items()}
        if read != listed_counts[split_name]:
            raise RuntimeError(
                f"Files under {os.path.join(input_base, split_folder)} changed during "
                f"ingestion: listed {listed_counts[split_name]}, processed {read}")
        report["splits"][split_name] = split_report
        logging.info(
            "ImageExampleGen split %r (%s): seen %d, written %d, rejected %d, ignored %d; %s",
            split_name, split_folder, split_report["seen"], split_report[WRITTEN],
            split_report[REJECTED], split_report[IGNORED],
            ", ".join(f"{name} {c[WRITTEN]}/{c['seen']}"
                      for name, c in split_report["classes"].items()),
        )
    for split_name, overlapping in _overlapping_files(outcomes).items():
        report["splits"][split_name].update(overlapping=len(overlapping),
                                            overlapping_files=overlapping)
    return report


def _overlapping_files(outcomes: Mapping[str, Sequence[Mapping[str, Any]]]
                       ) -> Dict[str, List[Dict[str, Any]]]:
    """By split, its written files whose bytes a written file of another split has, each
    with those files."""
    written = {split_name: sorted((o for o in split_outcomes if o["outcome"] == WRITTEN),
                                  key=lambda o: o["file"])
               for split_name, split_outcomes in outcomes.items()}
    written_as = collections.defaultdict(list)  # digest -> [(split, file)]
    for split_name, files in written.items():
        for outcome in files:
            written_as[outcome["sha256"]].append((split_name, outcome["file"]))
    return {split_name: [
        {"file": outcome["file"], "class": outcome["class"], "same_as": same_as}
        for outcome in files
        if (same_as := [{"split": other, "file": file}
                        for other, file in written_as[outcome["sha256"]] if other != split_name])]
        for split_name, files in written.items()}


def write_report(report: Mapping[str, Any], examples_uri: str) -> None:
    with tf.io.gfile.GFile(os.path.join(examples_uri, REPORT_FILE_NAME), "w") as f:
        f.write(json.dumps(report, indent=2, sort_keys=True))


def check_rejected_fraction(report: Mapping[str, Any], max_rejected_fraction: float) -> None:
    """Fails rather than train on a gutted dataset, naming the worst offenders."""
    for split_name, split in report["splits"].items():
        candidates = split[WRITTEN] + split[REJECTED]
        fraction = split[REJECTED] / candidates if candidates else 0.0
        if fraction <= max_rejected_fraction:
            continue
        worst_classes = sorted(split["classes"].items(), key=lambda item: -item[1][REJECTED])
        by_class = ", ".join(f"{name} {counts[REJECTED]}" for name, counts in worst_classes)
        first = "; ".join(f"{r['file']}: {r['reason']}" for r in split["rejected_files"][:5])
        raise ValueError(
            f"Split {split_name!r} rejected {split[REJECTED]} of {candidates} image files "
            f"({fraction:.1%}), above max_rejected_fraction={max_rejected_fraction}. "
            f"Rejected by class: {by_class}. First rejected: {first}. "
            "Every rejected file and its reason is in the ingestion report."
        )


def check_split_overlap(report: Mapping[str, Any], max_split_overlap_fraction: float) -> None:
    """Fails rather than evaluate on training images (the gate would bless training
    accuracy), naming the splits and their first overlapping files."""
    fractions = {split_name: split["overlapping"] / split[WRITTEN] if split[WRITTEN] else 0.0
                 for split_name, split in report["splits"].items()}
    above = [name for name, fraction in fractions.items()
             if fraction > max_split_overlap_fraction]
    if not above:
        return
    shares = ", ".join(f"{name} {report['splits'][name]['overlapping']} of its "
                       f"{report['splits'][name][WRITTEN]} ({fractions[name]:.1%})"
                       for name in above)
    first = "; ".join(
        f"{above[0]} {overlap['file']} = " + ", ".join(f"{same['split']} {same['file']}"
                                                      for same in overlap["same_as"])
        for overlap in report["splits"][above[0]]["overlapping_files"][:5])
    raise ValueError(
        f"Splits share written images with other splits, byte for byte: {shares}, above "
        f"max_split_overlap_fraction={max_split_overlap_fraction}. First: {first}. "
        "Every overlapping file is in the ingestion report.")
