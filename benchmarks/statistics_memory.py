"""StatisticsGen's peak memory against the data size: the pipeline's statistics options
(the image as bytes) against TFDV's defaults (the image as a categorical string, as
StatisticsGen ran before), on the same examples.

For each size, generated images are ingested once by ImageExampleGen's executor; TFX's
StatisticsGen executor then runs on them once per set of options, each in a fresh
process with the pipeline's DirectRunner settings (2 workers). Peak memory is the summed
RSS of that process and its Beam workers, sampled every 0.2 s as in
benchmarks/pipeline_scaling.py; the process imports the pipeline definition either way.

    python -m benchmarks.statistics_memory [--sizes 1000,8000]
"""
import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

import psutil

# Keras 2 (tf-keras) must be chosen before TensorFlow is first imported; the spawned
# processes inherit it.

from benchmarks.pipeline_scaling import tree_rss
from data.generate import generate_dataset

BEAM_WORKERS = 2  # as in the scaling benchmark's pipeline runs
SPLITS = ("train", "eval")
# Label -> whether StatisticsGen gets the pipeline's options (else TFDV's defaults).
OPTIONS = {"TFDV defaults (before)": False, "pipeline's (image as bytes)": True}


def _ingest(data_root: str, examples_uri: str) -> None:
    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
    from tfx.types import standard_artifacts

    from components.image_example_gen.component import ImageExampleGen
    from components.image_example_gen.executor import Executor
    from pipeline.config import PipelineConfig

    examples = standard_artifacts.Examples()
    examples.uri = examples_uri
    context = BaseBeamExecutor.Context(
        beam_pipeline_args=PipelineConfig(beam_num_workers=BEAM_WORKERS).beam_pipeline_args())
    Executor(context).Do({}, {"examples": [examples]},
                         dict(ImageExampleGen(input_base=data_root).exec_properties))


def _statistics_gen(examples_uri: str, statistics_uri: str, pipeline_options: bool) -> None:
    from tfx.components.statistics_gen.executor import Executor
    from tfx.components.util import examples_utils
    from tfx.dsl.components.base.base_beam_executor import BaseBeamExecutor
    from tfx.proto import example_gen_pb2
    from tfx.types import artifact_utils, standard_artifacts

    from pipeline.config import PipelineConfig
    from pipeline.definition import statistics_options

    examples = standard_artifacts.Examples()
    examples.uri = examples_uri
    examples.split_names = artifact_utils.encode_split_names(list(SPLITS))
    examples_utils.set_file_format(examples, "tfrecords_gzip")  # as ImageExampleGen writes
    examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
    statistics = standard_artifacts.ExampleStatistics()
    statistics.uri = statistics_uri
    context = BaseBeamExecutor.Context(
        beam_pipeline_args=PipelineConfig(beam_num_workers=BEAM_WORKERS).beam_pipeline_args())
    Executor(context).Do(
        {"examples": [examples]}, {"statistics": [statistics]},
        {"stats_options_json": statistics_options().to_json() if pipeline_options else None,
         "exclude_splits": "[]"})


def _logged(log: str, target, *args) -> None:
    """`target(*args)`, with this process's output and its Beam workers' in `log`."""
    output = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(output, 1)
    os.dup2(output, 2)
    target(*args)


def measure(log: Path, target, *args) -> tuple[float, int]:
    """Wall seconds and peak process-tree RSS of `target(*args)` in a fresh process."""
    process = multiprocessing.get_context("spawn").Process(
        target=_logged, args=(str(log), target, *args))
    started = time.perf_counter()
    process.start()
    watched, peak = psutil.Process(process.pid), 0
    while process.is_alive():
        peak = max(peak, tree_rss(watched))
        time.sleep(0.2)
    if process.exitcode != 0:
        raise RuntimeError(f"{target.__name__} failed:\n{log.read_text()[-3000:]}")
    return time.perf_counter() - started, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,8000",
                        help="comma-separated image counts, 5/6 of them train")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"Machine: {os.cpu_count()} CPU cores, {psutil.virtual_memory().total / 2**30:.0f} "
          f"GiB; StatisticsGen on {BEAM_WORKERS} Beam workers")
    peaks: dict[str, dict[int, int]] = {label: {} for label in OPTIONS}
    with tempfile.TemporaryDirectory() as temp:
        for size in sizes:
            work = Path(temp, str(size))
            per_class = size // 2
            generate_dataset(work / "data", train_per_class=per_class * 5 // 6,
                             test_per_class=per_class - per_class * 5 // 6, seed=0)
            examples_uri = str(work / "examples")
            measure(work / "ingestion.log", _ingest, str(work / "data"), examples_uri)
            for label, pipeline_options in OPTIONS.items():
                name = f"statistics-{'pipeline' if pipeline_options else 'defaults'}"
                seconds, peaks[label][size] = measure(
                    work / f"{name}.log", _statistics_gen, examples_uri, str(work / name),
                    pipeline_options)
                print(f"{size:6d} images, {label:>28}: {seconds:6.1f} s, peak RSS "
                      f"{peaks[label][size] / 2**30:5.2f} GiB", flush=True)
    smallest, largest = sizes[0], sizes[-1]
    growth = ", ".join(f"{label} {(peak[largest] - peak[smallest]) / 2**30:+.2f} GiB"
                       for label, peak in peaks.items())
    print(f"StatisticsGen peak RSS from {smallest} to {largest} images: {growth}")


if __name__ == "__main__":
    main()
