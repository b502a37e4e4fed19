"""Errors raised for bad input data."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class DataError(ValueError):
    """Input data that genegraph cannot use; the message says what is wrong and where."""


@contextmanager
def for_dataset(dataset: str) -> Iterator[None]:
    """Prefix any :class:`DataError` raised inside the block with the dataset id."""
    try:
        yield
    except DataError as err:
        msg = str(err)
        if msg.startswith(f"dataset '{dataset}'"):
            raise
        raise DataError(f"dataset '{dataset}': {msg}") from err
