"""What a component just did, in a few words for the run's console: read from its newest
execution in MLMD and the files of its output artifacts, without TensorFlow.

    ImageExampleGen   1,000 train + 200 eval images ingested, 0 rejected
    ExampleValidator  no anomalies
    Trainer           27 of 150 epochs (405 steps), stopped early ...; eval accuracy 0.995
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from metadata import evaluation_results
from metadata.store import (COMPONENT_CONTEXT, Artifact, Execution,
                            artifacts_by_key, open_store, property_value)
from metadata.tfrecords import records_in
from models import features

# Where the ingestion report and the training summary are, in their artifacts.
INGESTION_REPORT_FILE = "ingestion_report.json"


def stage_result(metadata_path: str, pipeline_name: str, component: str) -> str:
    """The newest execution of `component`: what it produced, "(cached)" when it reused
    an earlier run's outputs; "" for a component with nothing to say."""
    store = open_store(metadata_path)
    node = store.get_context_by_type_and_name(COMPONENT_CONTEXT, f"{pipeline_name}.{component}")
    executions = store.get_executions_by_context(node.id) if node else []
    if not executions:
        return ""
    execution = max(executions, key=lambda execution: execution.id)
    outputs = artifacts_by_key(store, execution)
    if not outputs:  # a resolver that found nothing, e.g. no blessed model yet
        return "none found"
    describe = next((describe for key, describe in _DESCRIBE_OUTPUTS if key in outputs),
                    lambda outputs: "")
    text = describe(outputs)
    if execution.last_known_state == Execution.CACHED:
        return f"{text} (cached)" if text else "cached"
    return text


def _train_first(splits) -> list[str]:
    return sorted(splits, key=lambda split: (split != "train", split))


def _splits(artifact: Artifact) -> list[str]:
    """The artifact's split names, train first."""
    return _train_first(json.loads(property_value(artifact, "split_names", "[]")))


def _ingested(outputs: dict[str, Artifact]) -> str:
    report = json.loads(Path(outputs["examples"].uri, INGESTION_REPORT_FILE).read_text())
    splits = {split: report["splits"][split] for split in _train_first(report["splits"])}
    written = " + ".join(f"{counts['written']:,} {split}" for split, counts in splits.items())
    rejected = sum(counts["rejected"] for counts in splits.values())
    ignored = sum(counts["ignored"] for counts in splits.values())
    return (f"{written} images ingested, {rejected:,} rejected"
            + (f", {ignored:,} ignored" if ignored else "")
            + (f" (listed in {Path(outputs['examples'].uri, INGESTION_REPORT_FILE)})"
               if rejected or ignored else ""))


def _split_protos(artifact: Artifact, file_name: str, message_type):
    """{split: the message in Split-<split>/<file_name>}, train first."""
    return {split: message_type.FromString(
                Path(artifact.uri, f"Split-{split}", file_name).read_bytes())
            for split in _splits(artifact)}


def _statistics(outputs: dict[str, Artifact]) -> str:
    statistics = _split_protos(outputs["statistics"], "FeatureStats.pb",
                               statistics_pb2.DatasetFeatureStatisticsList)
    counts = " + ".join(f"{split_statistics.datasets[0].num_examples:,} {split}"
                        for split, split_statistics in statistics.items())
    return f"statistics of {counts} examples"


def _schema(outputs: dict[str, Artifact]) -> str:
    schema = text_format.Parse(Path(outputs["schema"].uri, "schema.pbtxt").read_text(),
                               schema_pb2.Schema())
    return f"{len(schema.feature)} features"


def _anomalies(outputs: dict[str, Artifact]) -> str:
    anomalies = _split_protos(outputs["anomalies"], "SchemaDiff.pb", anomalies_pb2.Anomalies)
    found = [f"{split} {feature}: {info.short_description}"
             for split, split_anomalies in anomalies.items()
             for feature, info in sorted(split_anomalies.anomaly_info.items())]
    return f"{len(found)} anomalies: {'; '.join(found)}" if found else "no anomalies"


def _baseline(outputs: dict[str, Artifact]) -> str:
    model = outputs.get("model")
    return f"baseline: model {model.id} ({model.uri})" if model else "no baseline yet"


def _transformed(outputs: dict[str, Artifact]) -> str:
    artifact = outputs["transformed_examples"]
    counts = [f"{sum(records_in(path) for path in Path(artifact.uri, f'Split-{split}').glob('*.gz')):,}"
              f" {split}" for split in _splits(artifact)]
    return f"{' + '.join(counts)} examples transformed"


def _trained(outputs: dict[str, Artifact]) -> str:
    summary = json.loads(Path(outputs["model"].uri, features.TRAINING_STATE_DIR,
                              features.TRAINING_SUMMARY_FILE).read_text())
    early = ", stopped early (eval accuracy had stopped improving)" if summary["stopped_early"] else ""
    return (f"{summary['epochs_trained']} of {summary['epochs_planned']} epochs "
            f"({summary['steps']:,} steps){early}; eval accuracy {summary['eval_accuracy']:.3f}")


def _evaluated(outputs: dict[str, Artifact]) -> str:
    metrics = evaluation_results.overall_metrics(outputs["evaluation"].uri)
    blessed = property_value(outputs["blessing"], "blessed", 0) == 1
    failures = evaluation_results.failed_thresholds(outputs["evaluation"].uri)
    verdict = "BLESSED" if blessed else f"NOT blessed: {'; '.join(failures) or 'see the report'}"
    return (f"accuracy {metrics.get('binary_accuracy', float('nan')):.3f}, "
            f"AUC {metrics.get('auc', float('nan')):.3f}: {verdict}")


def _pushed(outputs: dict[str, Artifact]) -> str:
    artifact = outputs["pushed_model"]
    if property_value(artifact, "pushed", 0) != 1:
        return "nothing pushed (the model is not blessed)"
    return f"pushed to {property_value(artifact, 'pushed_destination', '?')}"


# What a component's outputs say, by the first of its output keys in this list: the
# Trainer's outputs hold "model" too, the baseline resolver's "model_blessing".
_DESCRIBE_OUTPUTS: list[tuple[str, Callable[[dict[str, Artifact]], str]]] = [
    ("pushed_model", _pushed),
    ("evaluation", _evaluated),
    ("model_run", _trained),
    ("transformed_examples", _transformed),
    ("anomalies", _anomalies),
    ("schema", _schema),
    ("statistics", _statistics),
    ("model_blessing", _baseline),
    ("examples", _ingested),
]
