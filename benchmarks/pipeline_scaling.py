"""Whole pipeline and scaling: `make pipeline` at 1k, 4k and 16k generated images.

The model and its training steps are fixed (small), so what grows with the data is the
data processing: ingestion, statistics, Transform, evaluation. Wall time and peak memory
(summed RSS of the whole process tree, sampled every 0.2 s) of each run, the growth from
the smallest size to the largest (target: no faster than linear), StatisticsGen's peak at
both (it grew with the data while TFDV counted the image bytes as categories), and the
cached rerun of the largest against its first run.

    python -m benchmarks.pipeline_scaling [--sizes 1000,4000,16000]
"""
import argparse
import dataclasses
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from data.generate import generate_dataset
from pipeline.source import REPO_ROOT
# Fixed and small: one pass over the training split, so training grows with the data
# as every other component does.
FIXED_MODEL = {"IMAGE_SIZE_PX": "64", "RESNET_DEPTH": "18", "WIDTH_MULTIPLIER": "0.25",
               "TRAIN_EPOCHS": "1", "WARMUP_STEPS": "10", "MIN_ACCURACY": "0.0"}


# What the log says is running: make echoes each step's command, the local runner logs
# each component's start. Everything before the first marker is "start"; "register"
# lasts until the first component starts, so it includes the TFX CLI starting the run.
PHASE_MARKERS = (
    (re.compile(r"-m pipeline\.registration"), "register"),
    (re.compile(r"Component (\w+) is running"), None),  # None: the component's own name
    (re.compile(r"cats-dogs-report"), "report"),
    (re.compile(r"-m pipeline\.summary"), "summary"),
)


@dataclasses.dataclass
class Run:
    seconds: float
    peak_rss: int
    # Per phase, in the order they ran: (seconds, peak process-tree RSS in bytes).
    phases: dict[str, tuple[float, int]]


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def phases_started(text: str) -> list[str]:
    """The phases whose start markers `text` holds, in order."""
    found = []
    for line in text.splitlines():
        for marker, phase in PHASE_MARKERS:
            match = marker.search(line)
            if match:
                found.append(phase or match.group(1))
                break
    return found


def run_pipeline(environment: dict[str, str], log: Path) -> Run:
    """Wall time and peak process-tree RSS of one `make pipeline`, overall and per phase."""
    started = time.perf_counter()
    phase, phase_started, unread = "start", started, ""
    phases: dict[str, tuple[float, int]] = {}
    # Output to a file: a pipe nobody reads while polling would fill and stall the run.
    with open(log, "w") as output, open(log) as reader:
        process = subprocess.Popen(["make", "-C", str(REPO_ROOT), "pipeline"],
                                   env={**os.environ, **environment},
                                   stdout=output, stderr=subprocess.STDOUT)
        watched = psutil.Process(process.pid)
        while process.poll() is None:
            rss, now = tree_rss(watched), time.perf_counter()
            # Only complete lines: a marker may be half written.
            *lines, unread = (unread + reader.read()).split("\n")
            for next_phase in phases_started("\n".join(lines)):
                if next_phase == phase:
                    continue
                phases[phase] = (now - phase_started, phases.get(phase, (0, 0))[1])
                phase, phase_started = next_phase, now
            phases[phase] = (now - phase_started, max(rss, phases.get(phase, (0, 0))[1]))
            time.sleep(0.2)
    if process.returncode != 0:
        raise RuntimeError(f"make pipeline failed:\n{log.read_text()[-3000:]}")
    return Run(time.perf_counter() - started, max(peak for _, peak in phases.values()), phases)


def print_phases(runs: dict[str, Run]) -> None:
    """One row per phase, seconds and peak RSS (GiB) per run."""
    names = list(dict.fromkeys(name for run in runs.values() for name in run.phases))
    print(f"{'phase':>18} " + " ".join(f"{label:>17}" for label in runs))
    for name in names:
        cells = []
        for run in runs.values():
            seconds, peak = run.phases.get(name, (0.0, 0))
            cells.append(f"{seconds:6.1f} s {peak / 2**30:5.2f} GiB")
        print(f"{name:>18} " + " ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,4000,16000",
                        help="comma-separated image counts, 5/6 of them train")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"Machine: {os.cpu_count()} CPU cores, {psutil.virtual_memory().total / 2**30:.0f} "
          f"GiB; fixed model {FIXED_MODEL}")
    runs: dict[str, Run] = {}
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
            run = runs[str(size)] = run_pipeline(environment, work / "first_run.log")
            print(f"{size:6d} images: {run.seconds:7.1f} s, peak RSS "
                  f"{run.peak_rss / 2**30:5.2f} GiB, {size / run.seconds:6.1f} images/s",
                  flush=True)
        cached = runs[f"{sizes[-1]} cached"] = run_pipeline(environment, work / "cached_run.log")
    smallest, largest = runs[str(sizes[0])], runs[str(sizes[-1])]
    print_phases(runs)
    print(f"cached rerun at {sizes[-1]} images: {cached.seconds:.1f} s, peak RSS "
          f"{cached.peak_rss / 2**30:.2f} GiB ({cached.seconds / largest.seconds:.2f}x the "
          "first run)")
    statistics_peaks = [run.phases.get("StatisticsGen", (0.0, 0))[1] / 2**30
                        for run in (smallest, largest)]
    print(f"StatisticsGen peak RSS: {statistics_peaks[0]:.2f} GiB at {sizes[0]} images, "
          f"{statistics_peaks[1]:.2f} GiB at {sizes[-1]} "
          f"({statistics_peaks[1] - statistics_peaks[0]:+.2f} GiB)")
    growth = sizes[-1] / sizes[0]
    print(f"scaling {sizes[-1]}/{sizes[0]} images: time x{largest.seconds / smallest.seconds:.1f}, "
          f"peak RSS x{largest.peak_rss / smallest.peak_rss:.2f} for data x{growth:.0f} "
          f"(target: time at most x{growth:.0f})")


if __name__ == "__main__":
    main()
