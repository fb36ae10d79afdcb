"""`python -m pipeline.console NAME -- COMMAND...`: runs COMMAND with a console a person
can follow, and its whole output in a log file.

Everything the command and its processes print (TFX, Beam and TensorFlow log thousands of
lines a run) goes to `<output_dir>/logs/NAME-<time>-<pid>.log`, named in the first line.
The console shows only the lines they mean for a person (models/console.py): a line per stage
and, on a terminal, a progress line drawn in place; with --show-stdout (the benchmarks,
which print their figures) also the command's standard output. VERBOSE=1 shows the whole output too,
as it all was before. When the command fails, the log's last lines are shown, with its name.
"""
import argparse
import collections
import datetime
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from models import console
from pipeline.config import PipelineConfig

# The log's last lines shown when the command fails: its error and what led to it.
FAILURE_TAIL_LINES = 30
# How often the console lines' file is read while the command runs.
POLL_S = 0.2


def log_path(config: PipelineConfig, name: str) -> Path:
    """NAME-<time>-<process id>.log: two commands started in the same second (a second
    `make pipeline` refused beside a first) never share a log."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(config.logs_dir, f"{name}-{stamp}-{os.getpid()}.log")


class ConsoleLines:
    """Shows the lines the command's processes append to `path` (models/console.py)."""

    def __init__(self, path: Path, inline_progress: bool):
        self.path = path
        self.inline_progress = inline_progress
        self.offset = 0
        self.progress_shown = False
        self.last_progress = -console.PROGRESS_LINE_INTERVAL_S

    def show_new(self) -> None:
        with self.path.open("rb") as lines:
            lines.seek(self.offset)
            data = lines.read()
        complete = data[:data.rfind(b"\n") + 1]  # a line still being written waits
        self.offset += len(complete)
        for record in complete.decode("utf-8", "replace").splitlines():
            kind, _, line = record.partition("\t")
            self.show(kind, line)

    def show(self, kind: str, line: str) -> None:
        if kind == console.PROGRESS and self.inline_progress:
            sys.stdout.write(f"\r{line}\x1b[K")
            self.progress_shown = True
        elif kind == console.PROGRESS:
            if time.monotonic() - self.last_progress < console.PROGRESS_LINE_INTERVAL_S:
                return
            self.last_progress = time.monotonic()
            sys.stdout.write(f"{line}\n")
        else:
            sys.stdout.write(("\r\x1b[K" if self.progress_shown else "") + f"{line}\n")
            self.progress_shown = False
        sys.stdout.flush()


def run(name: str, command: list[str], verbose: bool, show_stdout: bool = False) -> int:
    try:
        config = PipelineConfig.from_env()  # a misspelt setting stops here, before any work
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    path = log_path(config, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines_path = path.with_suffix(".console")
    lines_path.write_text("")
    print(f"Full log: {path}", flush=True)
    lines = ConsoleLines(lines_path, inline_progress=sys.stdout.isatty() and not verbose)
    tail: collections.deque[bytes] = collections.deque(maxlen=FAILURE_TAIL_LINES)
    with path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if show_stdout else subprocess.STDOUT,
            env={**os.environ, console.CONSOLE_LINES_ENV: str(lines_path)})
        lock = threading.Lock()

        def copy_output(stream, shown):
            for line in iter(stream.readline, b""):
                with lock:
                    log.write(line)
                    log.flush()
                    tail.append(line)
                    if shown or verbose:
                        (sys.stdout if shown else sys.stderr).buffer.write(line)
                        (sys.stdout if shown else sys.stderr).flush()

        copiers = [threading.Thread(target=copy_output, args=(process.stdout, show_stdout))]
        if show_stdout:
            copiers.append(threading.Thread(target=copy_output, args=(process.stderr, False)))
        for copier in copiers:
            copier.start()
        # Ctrl-C reaches the command too (one process group): let it stop, then report.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: process.terminate())
        while process.poll() is None:
            lines.show_new()
            time.sleep(POLL_S)
        for copier in copiers:
            copier.join()
        lines.show_new()
    lines_path.unlink()
    if process.returncode != 0:
        if not verbose:
            sys.stderr.buffer.write(b"".join(tail))
        print(f"Failed (exit status {process.returncode}). Full log: {path}", file=sys.stderr)
    return process.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--show-stdout", action="store_true",
                        help="show the command's standard output too")
    parser.add_argument("name", help="the log's name, e.g. pipeline")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- and the command to run")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    return run(args.name, command, verbose=os.environ.get("VERBOSE", "") not in ("", "0"),
               show_stdout=args.show_stdout)


if __name__ == "__main__":
    sys.exit(main())
