"""structlog configuration: JSON (or console) lines to stderr, level from the profile.

Per-message logs are DEBUG only; WARNING says why a peer's input was refused.
"""

from __future__ import annotations

import logging
import sys

import structlog

_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING,
           "ERROR": logging.ERROR}


def make_logger(
    level: str, fmt: str, name: str = "fivegmc"
) -> structlog.typing.FilteringBoundLogger:
    """Build a bound logger for one node (no process-wide configuration is touched)."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer()
    )
    wrapper = structlog.make_filtering_bound_logger(_LEVELS.get(level.upper(), logging.INFO))
    logger: structlog.typing.FilteringBoundLogger = structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr),
        wrapper_class=wrapper,
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
    )
    return logger.bind(node=name)


def is_debug(level: str) -> bool:
    return level.upper() == "DEBUG"
