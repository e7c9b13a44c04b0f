"""CSV cells a spreadsheet shows as text instead of running.

Ledgers and scan results exported as CSV are opened in Excel or WPS by township staff. There, a
text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula: a village
name typed as `=HYPERLINK("http://…?"&A2, "详情")` would send the ledger's cells to a stranger
(CSV injection). Such text gets a leading `'`, which spreadsheets take as "this is text"; numbers,
negative longitudes included, are written as numbers and never touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Key = TypeVar("Key")


def safe_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_row(row: Iterable[object]) -> list[object]:
    return [safe_cell(value) for value in row]


def safe_record(record: Mapping[Key, object]) -> dict[Key, object]:
    return {key: safe_cell(value) for key, value in record.items()}
