"""Logging for rule scripts: INFO to the rule's log file and to stderr; bad input ends the job with one
clear line naming the dataset instead of a traceback."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path

from .errors import DataError, for_dataset

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_file: str | Path | None = None, level: int = logging.INFO) -> None:
    """Send log records (and Python warnings) to ``log_file`` and stderr."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=level, format=FORMAT, handlers=handlers, force=True)
    logging.captureWarnings(True)
    warnings.filterwarnings("default")


@contextmanager
def rule_context(log_file: str | Path | None, dataset: str | None = None,
                 threads: int | None = None) -> Iterator[logging.Logger]:
    """Set up logging for a rule script; a :class:`DataError` is logged as one line (prefixed with the
    dataset id) and the script exits with status 1.

    ``threads``: the job's thread count, applied to the BLAS/OpenMP pools of numpy and scipy for the block, so
    that results depend on the configuration, not on how many cores the node has (BLAS sums in an order
    that depends on its thread count)."""
    setup_logging(log_file)
    logger = logging.getLogger("genegraph.rule")
    with ExitStack() as stack:
        if threads:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=int(threads)))
        try:
            with for_dataset(dataset) if dataset is not None else nullcontext():
                yield logger
        except DataError as err:
            logger.error("%s", err)
            sys.exit(1)
