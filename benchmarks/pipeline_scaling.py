"""Whole pipeline and scaling: `make pipeline` at 1k, 4k and 16k generated images.

The model and its training steps are fixed (small), so what grows with the data is the
data processing: ingestion, statistics, Transform, evaluation. Wall time and peak memory
(summed RSS of the whole process tree, sampled every 0.2 s) of each run, the growth from
the smallest size to the largest (target: no faster than linear), and the cached rerun of
the largest against its first run.

    python -m benchmarks.pipeline_scaling [--sizes 1000,4000,16000]
"""
import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from data.generate import generate_dataset

REPO_ROOT = Path(__file__).resolve().parents[1]
# Fixed and small: training costs the same at every size.
FIXED_MODEL = {"IMAGE_SIZE_PX": "64", "RESNET_DEPTH": "18", "WIDTH_MULTIPLIER": "0.25",
               "TRAIN_STEPS": "100", "STEPS_PER_EPOCH": "50", "WARMUP_STEPS": "10",
               "MIN_ACCURACY": "0.0"}


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_pipeline(environment: dict[str, str], log: Path) -> tuple[float, int]:
    """(wall seconds, peak process-tree RSS in bytes) of one `make pipeline`."""
    started = time.perf_counter()
    # Output to a file: a pipe nobody reads while polling would fill and stall the run.
    with open(log, "w") as output:
        process = subprocess.Popen(["make", "-C", str(REPO_ROOT), "pipeline"],
                                   env={**os.environ, **environment},
                                   stdout=output, stderr=subprocess.STDOUT)
        watched, peak = psutil.Process(process.pid), 0
        while process.poll() is None:
            peak = max(peak, tree_rss(watched))
            time.sleep(0.2)
    if process.returncode != 0:
        raise RuntimeError(f"make pipeline failed:\n{log.read_text()[-3000:]}")
    return time.perf_counter() - started, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,4000,16000",
                        help="comma-separated image counts, 5/6 of them train")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"Machine: {os.cpu_count()} CPU cores, {psutil.virtual_memory().total / 2**30:.0f} "
          f"GiB; fixed model {FIXED_MODEL}")
    results = {}
    with tempfile.TemporaryDirectory() as temp:
        for size in sizes:
            work = Path(temp, str(size))
            per_class = size // 2
            generate_dataset(work / "data", train_per_class=per_class * 5 // 6,
                             test_per_class=per_class - per_class * 5 // 6, seed=0)
            environment = {**FIXED_MODEL, "DATA_ROOT": str(work / "data"),
                           "OUTPUT_DIR": str(work / "outputs"),
                           "LOCAL_HOME": str(work / "tfx_cli_home"),
                           "PIPELINE_NAME": f"scaling-{size}"}
            seconds, peak = run_pipeline(environment, work / "first_run.log")
            results[size] = seconds
            print(f"{size:6d} images: {seconds:7.1f} s, peak RSS {peak / 2**30:5.2f} GiB, "
                  f"{size / seconds:6.1f} images/s", flush=True)
        cached_seconds, cached_peak = run_pipeline(environment, work / "cached_run.log")
    smallest, largest = sizes[0], sizes[-1]
    print(f"cached rerun at {largest} images: {cached_seconds:.1f} s, peak RSS "
          f"{cached_peak / 2**30:.2f} GiB ({cached_seconds / results[largest]:.2f}x the first run)")
    print(f"scaling {largest}/{smallest} images: time x{results[largest] / results[smallest]:.1f} "
          f"for data x{largest / smallest:.0f} (target: at most x{largest / smallest:.0f})")


if __name__ == "__main__":
    main()
