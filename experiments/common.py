"""Helpers shared by the binaries."""

import contextlib
import logging as std_logging
import signal
import sys
import threading

from absl import app, flags, logging

from parrot_jax import parallel


class _QuietOrbax(std_logging.Filter):
    """Orbax logs a dozen INFO lines per checkpoint; keep its warnings and errors only."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname


def quiet_orbax() -> None:
    logging.get_absl_handler().addFilter(_QuietOrbax())


def warnings_only_unless_asked() -> None:
    """For binaries that only restore checkpoints: log at WARNING unless ``--verbosity``
    was given (Orbax logs every restore at INFO)."""
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)


def check_or_exit(check, *args):
    """``check(*args)``, a validation of the user's flags and config, and what it returns:
    the ValueError or FileNotFoundError it raises is printed as ``error: MESSAGE`` (no
    traceback) and the binary exits with status 2, before anything is computed or written."""
    try:
        return check(*args)
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def _interrupt(signum, frame):
    del signum, frame
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt while inside (main thread only), so a run stopped by
    ``timeout``, a scheduler or ``kill`` closes its pools and files as after Ctrl-C. (A
    shell's background job starts with SIGINT ignored, which Python keeps: SIGTERM is
    the signal that reaches such a run.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:  # None: a handler set outside Python, which cannot be put back from here
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def run_resumable(train_fn, config, workdir: str):
    """``train_fn(config, workdir)`` with Orbax's INFO lines filtered; Ctrl-C or SIGTERM
    exits with status 130 and says how to resume."""
    quiet_orbax()
    try:
        with sigterm_as_interrupt():
            return train_fn(config, workdir)
    except KeyboardInterrupt:
        print("\ninterrupted; rerun the same command to resume from the last checkpoint")
        raise SystemExit(130)


def define_distributed_flags():
    """``--coordinator_address``, ``--num_processes``, ``--process_id`` for a multi-host
    launch (one process per host, each given its own ``--process_id``), or ``--distributed``
    alone on clusters that ``jax.distributed`` detects by itself (SLURM, Cloud TPU);
    returns the function that joins the run, to call first in ``main``.

    Per-process launch settings, not config fields: the config (saved in ``config.json``)
    is the same for every process.
    """
    detect = flags.DEFINE_boolean(
        "distributed", False, "Multi-host run on a cluster JAX detects (SLURM, Cloud TPU): "
        "join it with the cluster's coordinator, process count and index.")
    address = flags.DEFINE_string(
        "coordinator_address", None,
        "Multi-host run: HOST:PORT where process 0 serves the JAX coordinator (every "
        "process gives the same one, with --num_processes and its own --process_id).")
    count = flags.DEFINE_integer("num_processes", None, "Multi-host run: number of "
                                 "processes (with --coordinator_address).", lower_bound=1)
    index = flags.DEFINE_integer("process_id", None, "Multi-host run: this process's index, "
                                 "0 .. num_processes - 1.", lower_bound=0)

    def initialize() -> None:
        given = {f.name: f.value for f in (address, count, index) if f.value is not None}
        if not given:
            if detect.value:
                parallel.initialize_distributed()
            return
        if len(given) < 3:
            missing = sorted({"coordinator_address", "num_processes", "process_id"} - set(given))
            raise app.UsageError(f"a multi-host launch needs --coordinator_address, "
                                 f"--num_processes and --process_id; missing "
                                 f"{', '.join('--' + m for m in missing)}")
        if index.value >= count.value:
            raise app.UsageError(f"--process_id={index.value} must be below "
                                 f"--num_processes={count.value}")
        parallel.initialize_distributed(address.value, count.value, index.value)

    return initialize
