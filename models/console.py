"""Lines for the person watching a run: a line per stage, a progress line while training.

Under `pipeline/console.py` (make pipeline, make retrain...), whatever a run prints goes to
its log file, and only these lines reach the console: they are appended to the file that
CONSOLE_LINES_ENV names, which every process of the run (the TFX CLI, the runner, its
Trainer) inherits. Without it they are printed. Here, at the bottom of the imports,
because the Trainer (models/) and the runners (pipeline/) both write such lines.
"""
import os
import time

CONSOLE_LINES_ENV = "CONSOLE_LINES"
# How each line is marked in that file: a line to keep, or a progress line that the next
# line replaces.
LINE, PROGRESS = "line", "progress"
# Printed, not drawn in place: a progress line at most this often (a log, not a film).
PROGRESS_LINE_INTERVAL_S = 20.0

_last_progress_line = -PROGRESS_LINE_INTERVAL_S


def show(line: str) -> None:
    _write(LINE, line)


def show_progress(line: str) -> None:
    """A progress line: drawn in place on a terminal (pipeline/console.py), else printed
    every PROGRESS_LINE_INTERVAL_S at most."""
    global _last_progress_line
    if os.environ.get(CONSOLE_LINES_ENV):
        _write(PROGRESS, line)
    elif time.monotonic() - _last_progress_line >= PROGRESS_LINE_INTERVAL_S:
        _last_progress_line = time.monotonic()
        _write(LINE, line)


def _write(kind: str, line: str) -> None:
    path = os.environ.get(CONSOLE_LINES_ENV)
    if not path:
        print(line, flush=True)
        return
    # One write of a line opened for appending: lines of several processes never mix.
    with open(path, "a", encoding="utf-8") as lines:
        lines.write(f"{kind}\t{line}\n")


def duration(seconds: float) -> str:
    """'42 s', '3 min 05 s', '1 h 02 min'."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
