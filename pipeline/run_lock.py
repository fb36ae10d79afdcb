"""One run at a time per pipeline root: `python -m pipeline.run_lock HOLDER COMMAND...`.

Whoever runs the pipeline holds an flock on `<pipeline root>.lock` until the run ends,
the processes it started included: `make pipeline` (this module, around the whole
recipe), `make retrain` (pipeline/retrain.py) and the local runner itself (a `tfx run
create` by hand). A second runner exits with status 75 (EX_TEMPFAIL: try again later),
saying who holds the lock.

The lock file is made the holder's standard input, the one file descriptor that every
child inherits (the TFX CLI's runner, Beam's workers, `make`'s recipe lines): the lock
lasts until the last of them ends, so killing the holder alone (a cron timeout) does not
free it while its run goes on. A child that takes the lock again finds it on its own
standard input, and holds it already.
"""
import argparse
import fcntl
import os
import sys
import time
from pathlib import Path

from pipeline.config import PipelineConfig

EXIT_LOCKED = 75  # EX_TEMPFAIL


class Locked(Exception):
    """Another run of the pipeline holds the lock; the message says which."""


def lock_path(config: PipelineConfig) -> Path:
    return Path(config.pipeline_root + ".lock")


def hold(config: PipelineConfig, holder: str) -> None:
    """Takes the pipeline root's lock for this process and every process it starts from
    now on, or raises Locked. `holder`: what runs, for the message a second runner
    prints (e.g. "make retrain"). A pipeline root on object storage has no lock here."""
    if "://" in config.pipeline_root:
        return
    path = lock_path(config)
    inherited = _is_standard_input(path)  # a parent holds it for us, on our standard input
    if inherited:
        descriptor = 0
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        message = (f"Another run of pipeline {config.pipeline_name} is under way: "
                   f"{_holder_of(descriptor)} holds {path}. Not starting a second run; "
                   "try again when it ends.")
        if not inherited:
            os.close(descriptor)
        raise Locked(message) from None
    if not inherited:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()} {holder}, since "
                  f"{time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
        os.dup2(descriptor, 0)  # the lock, inherited by every child from now on
        if descriptor != 0:
            os.close(descriptor)


def _is_standard_input(path: Path) -> bool:
    try:
        standard_input, lock = os.fstat(0), os.stat(path)
    except OSError:
        return False
    return (standard_input.st_dev, standard_input.st_ino) == (lock.st_dev, lock.st_ino)


def _holder_of(descriptor: int) -> str:
    """"process 1234 (make retrain, since ...)", as the holder wrote it."""
    pid, _, holder = os.pread(descriptor, 1000, 0).decode(errors="replace").partition(" ")
    if not pid.isdigit():
        return "a process that has not yet said which"
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        holder += "; it has ended, the processes it started still run"
    except PermissionError:
        pass  # it runs, as another user
    return f"process {pid} ({holder})"


def main(argv: list[str]) -> int:
    """Holds the lock, then becomes COMMAND (exec), which holds it on its standard input."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("holder", help="who holds the lock, as a second run is told")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="the command to run holding it, with its arguments")
    args = parser.parse_args(argv)
    if not args.command:
        parser.error("a COMMAND is needed")
    try:
        hold(PipelineConfig.from_env(), holder=args.holder)
    except Locked as error:
        print(error, file=sys.stderr)
        return EXIT_LOCKED
    os.execvp(args.command[0], args.command)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
