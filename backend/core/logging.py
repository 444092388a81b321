"""Loguru set-up: one sink, with stdlib and uvicorn logs routed into it."""

import logging
import sys

from loguru import logger

LOG_FORMAT = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS!UTC}Z</green> | <level>{level: <8}</level> | "
    "<cyan>{name}</cyan> - <level>{message}</level> <dim>{extra}</dim>"
)


# loguru's levels as stdlib ones; TRACE maps to DEBUG and SUCCESS to INFO.
STDLIB_LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "SUCCESS": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}


class InterceptHandler(logging.Handler):
    """Hands stdlib log records to loguru, keeping the caller's location."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame, depth = logging.currentframe(), 2
        while frame and frame.f_code.co_filename == logging.__file__:
            frame = frame.f_back
            depth += 1
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(level: str = "INFO") -> None:
    logger.remove()
    logger.add(sys.stderr, level=level, format=LOG_FORMAT, backtrace=False, diagnose=False)
    logging.basicConfig(handlers=[InterceptHandler()], level=0, force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "fastapi"):
        std_logger = logging.getLogger(name)
        std_logger.handlers = [InterceptHandler()]
        std_logger.propagate = False
        # Never TRACE: at that level uvicorn wraps the app in a middleware that logs every ASGI
        # message, which costs more than a health check itself.
        # Records below LOG_LEVEL are not even built (each access line costs a frame walk).
        std_logger.setLevel(STDLIB_LEVELS.get(level.upper(), logging.INFO))
    # ib_insync logs every wire message at INFO; its warnings and errors are what matter here.
    logging.getLogger("ib_insync").setLevel(logging.WARNING)
    # Its client logs every refused connection at ERROR; IBConnection reports those once, with
    # the host, the port and what to check.
    logging.getLogger("ib_insync.client").setLevel(logging.CRITICAL)
