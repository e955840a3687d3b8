"""Helpers shared by the binaries."""

import logging as std_logging

from absl import flags, logging


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


def run_resumable(train_fn, config, workdir: str):
    """``train_fn(config, workdir)`` with Orbax's INFO lines filtered; Ctrl-C exits with
    status 130 and says how to resume."""
    quiet_orbax()
    try:
        return train_fn(config, workdir)
    except KeyboardInterrupt:
        print("\ninterrupted; rerun the same command to resume from the last checkpoint")
        raise SystemExit(130)
