"""Shared by the 837P tests: pyx12's validation on text in memory, and valid NPIs."""

from __future__ import annotations

import io
import logging

import pyx12.params
import pyx12.x12n_document

from telerehab.accounts.rules import npi_check_digit


def npi(first_nine: str) -> str:
    return first_nine + str(npi_check_digit(first_nine))


def pyx12_errors(text: str) -> list[str]:
    """pyx12's x12n validation (what `x12valid` runs), on the text in memory: [] when it passes."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    logger = logging.getLogger("pyx12")
    handler = Collect(level=logging.WARNING)
    logger.addHandler(handler)
    try:
        ok = pyx12.x12n_document.x12n_document(param=pyx12.params.params(), src_file=io.StringIO(text),
                                               fd_997=io.StringIO(), fd_html=None)
    finally:
        logger.removeHandler(handler)
    return [] if ok and not messages else messages or ["pyx12: Failure"]
