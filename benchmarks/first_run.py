"""The first run: `make pipeline` on the default generated data, phase by phase, with the
defaults against the same run without the early stop, in one run.

    make bench-first-run

Each run starts from nothing but the venv (its own output folder and TFX CLI registry,
the dataset generated again), as a new user's first `make pipeline` does. The phases are
the run's own console lines (a line per stage with its time); "before the components" is
generating the data, registering the pipeline and the TFX CLI starting the run; "after"
the summary and the report.

Ends with `first run with early stop / without: X.XX`.
"""
import argparse
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

from metadata.runs import latest_run_summary
from pipeline.config import PipelineConfig
from pipeline.source import REPO_ROOT

# A console line of a stage: its name, its time ("42 s", "1 min 05 s") and its result.
STAGE_LINE = re.compile(r"^  (\S+) +((?:\d+ min )?\d+ s)  (.*)$")


def seconds(duration: str) -> int:
    minutes = re.search(r"(\d+) min", duration)
    return (int(minutes[1]) * 60 if minutes else 0) + int(re.search(r"(\d+) s$", duration)[1])


def first_run(work: Path, settings: dict[str, str]) -> dict:
    """`make pipeline` in a fresh output folder: wall time, each stage's seconds and
    result, and the Evaluator's accuracy."""
    environment = {**os.environ, "OUTPUT_DIR": str(work / "outputs"),
                   "LOCAL_HOME": str(work / "tfx_cli_home"), **settings}
    started = time.monotonic()
    result = subprocess.run(["make", "-C", str(REPO_ROOT), "pipeline"], env=environment,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"make pipeline failed ({result.returncode}):\n"
                           f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    wall_s = time.monotonic() - started
    stages = {match[1]: (seconds(match[2]), match[3]) for line in result.stdout.splitlines()
              if (match := STAGE_LINE.match(line))}
    summary = latest_run_summary(PipelineConfig.from_env(environment).metadata_path)
    return {"wall_s": wall_s, "stages": stages, "accuracy": summary.metrics["binary_accuracy"],
            "blessed": summary.blessed, "console": result.stdout}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args()
    runs = {}
    for name, settings in [("with early stop (defaults)", {}),
                           ("without (PLATEAU_PATIENCE_EPOCHS=0)", {"PLATEAU_PATIENCE_EPOCHS": "0"})]:
        with tempfile.TemporaryDirectory(prefix="first-run-") as work:
            runs[name] = first_run(Path(work), settings)
        print(f"{name}: {runs[name]['wall_s']:.0f} s, eval accuracy "
              f"{runs[name]['accuracy']:.3f}, {'blessed' if runs[name]['blessed'] else 'NOT blessed'}",
              flush=True)
    names = list(runs)
    print("\n| phase | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    phases = list(runs[names[0]]["stages"])
    for phase in phases:
        print(f"| {phase} | " + " | ".join(f"{runs[name]['stages'][phase][0]} s"
                                           for name in names) + " |")
    for name in names:
        stage_total = sum(time_s for time_s, _ in runs[name]["stages"].values())
        runs[name]["outside_s"] = runs[name]["wall_s"] - stage_total
    print("| before and after the components | " + " | ".join(
        f"{runs[name]['outside_s']:.0f} s" for name in names) + " |")
    print("| whole `make pipeline` | " + " | ".join(
        f"{runs[name]['wall_s']:.0f} s" for name in names) + " |")
    print(f"\nTrainer, with early stop: {runs[names[0]]['stages']['Trainer'][1]}")
    print(f"first run with early stop / without: "
          f"{runs[names[0]]['wall_s'] / runs[names[1]]['wall_s']:.2f}")


if __name__ == "__main__":
    main()
