"""Helpers shared by the binaries."""

import logging as std_logging

from absl import logging


class _QuietOrbax(std_logging.Filter):
    """Orbax logs a dozen INFO lines per checkpoint; keep its warnings and errors only."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        return record.levelno >= std_logging.WARNING or "orbax" not in record.pathname


def quiet_orbax() -> None:
    logging.get_absl_handler().addFilter(_QuietOrbax())
