"""CSV cells: text a spreadsheet would run as a formula is marked as text; everything else is left alone."""

from __future__ import annotations

import pytest

from inference_api.spreadsheet import safe_cell, safe_record, safe_row


@pytest.mark.parametrize("text", ["=1+1", "+1+1", "-2+3+cmd|' /C calc'!A0", "@SUM(1)", "\t=1", "\r=1"])
def test_text_a_spreadsheet_would_run_gets_a_leading_quote(text: str) -> None:
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["岳阳市", "a=b", "", " =1", -70.25, -3, 0.5, None])
def test_other_values_are_unchanged(value: object) -> None:
    assert safe_cell(value) == value and type(safe_cell(value)) is type(value)


def test_rows_and_records() -> None:
    assert safe_row(["=x", -1.5, "ok"]) == ["'=x", -1.5, "ok"]
    assert safe_record({"region": "@x", "lon": -120.0}) == {"region": "'@x", "lon": -120.0}
