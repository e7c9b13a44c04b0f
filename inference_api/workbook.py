""".xlsx files the offices open in Excel or WPS: the ledger, the summary and the ranking.

Headers are Chinese, as the offices' own forms are; times are real spreadsheet dates in the
offices' time zone (Excel has no time zones, so they are written as local wall-clock times and
the header says which zone); finding numbers link to the finding's page. Text is always stored
as text, never as a formula, so a place name typed as `=HYPERLINK(…)` stays a name (the CSV
exports prefix a `'` for the same reason, inference_api/spreadsheet.py).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from openpyxl.cell import Cell
from openpyxl.worksheet.worksheet import Worksheet

from inference_api.schemas import Bulletin, BulletinItem, FindingOut, Status, Summary
from model.taxonomy import PROBLEM_TYPES, PROBLEMS_BY_KEY

STATUS_ZH = {
    Status.candidate: "待确认",
    Status.confirmed: "已确认",
    Status.dismissed: "已驳回",
    Status.rectification_ordered: "整改中",
    Status.rectified: "已整改",
    Status.closed: "已销号",
}
DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
DATE_FORMAT = "yyyy-mm-dd"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def type_zh(key: str) -> str:
    found = PROBLEMS_BY_KEY.get(key)
    return found.name_zh if found else key


class Sheet:
    """Rows appended to one worksheet, each value written as what it is: text, number, date, link."""

    def __init__(self, sheet: Worksheet, headers: Sequence[str], zone: ZoneInfo) -> None:
        self.sheet, self.zone = sheet, zone
        sheet.append(list(headers))
        for cell in sheet[1]:
            cell.style = "Headline 4"
        sheet.freeze_panes = "A2"
        for i, header in enumerate(headers):
            sheet.column_dimensions[sheet.cell(1, i + 1).column_letter].width = max(10, 2.2 * len(header) + 2)

    def row(self, values: Iterable[object]) -> None:
        number = self.sheet.max_row + 1
        for column, value in enumerate(values, start=1):
            self._put(self.sheet.cell(number, column), value)

    def _put(self, cell: Cell, value: object) -> None:
        if isinstance(value, Link):
            cell.value, cell.hyperlink, cell.style = value.text, value.url, "Hyperlink"
        elif isinstance(value, datetime):
            cell.value, cell.number_format = value.astimezone(self.zone).replace(tzinfo=None), DATETIME_FORMAT
        elif isinstance(value, date):
            cell.value, cell.number_format = value, DATE_FORMAT
        else:
            cell.value = value
            if isinstance(value, str):
                cell.data_type = "s"  # openpyxl would take "=…" for a formula


class Link:
    """A cell showing `text` that opens `url`."""

    def __init__(self, text: str | int, url: str | None) -> None:
        self.text, self.url = text, url


def finding_link(finding_id: int | None, base_url: str | None) -> Link | int | None:
    """The finding's number, linking to its page when the service's address is known."""
    if finding_id is None or base_url is None:
        return finding_id
    return Link(finding_id, f"{base_url}/#/findings/{finding_id}")


def _save(book: Workbook) -> bytes:
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _yes(value: bool | None) -> str:
    return "" if value is None else "是" if value else "否"


def ledger(findings: Iterable[FindingOut], base_url: str, zone: ZoneInfo) -> bytes:
    """问题台账: one row per finding, in the order given."""
    book = Workbook()
    tz = zone.key
    sheet = Sheet(
        book.active,
        [
            "编号",
            "问题类型",
            "置信度",
            "状态",
            "区县",
            "乡镇",
            "村",
            f"发现时间（{tz}）",
            f"上传时间（{tz}）",
            "整改时限",
            "超期未改",
            "逾期整改",
            "反弹自",
            "纬度",
            "经度",
            "巡查编号",
            "模型版本",
        ],
        zone,
    )
    book.active.title = "问题台账"
    for f in findings:
        sheet.row(
            [
                finding_link(f.id, base_url),
                type_zh(f.type),
                f.score,
                STATUS_ZH[f.status],
                f.region,
                f.township,
                f.village,
                f.observed_at,
                f.created_at,
                f.deadline,
                _yes(f.overdue),
                _yes(f.rectified_late),
                finding_link(f.recurrence_of, base_url),
                f.gps.lat if f.gps else None,
                f.gps.lon if f.gps else None,
                f.inspection_id,
                f.model_version,
            ]
        )
    return _save(book)


def summary(result: Summary, base_url: str, zone: ZoneInfo, filters: dict[str, str]) -> bytes:
    """分区汇总: one row per county, each count beside its name; the county links to its ledger."""
    book = Workbook()
    types = [p.key for p in PROBLEM_TYPES]
    sheet = Sheet(
        book.active,
        [
            "区县",
            "问题总数",
            *(type_zh(t) for t in types),
            *(STATUS_ZH[s] for s in Status),
            "整改已落实",
            "整改用时中位数（天）",
            "超期未改",
            "逾期整改",
        ],
        zone,
    )
    book.active.title = "分区汇总"
    for r in result.regions:
        query = urlencode({**filters, **({"region": r.region} if r.region else {})})
        sheet.row(
            [
                Link(r.region or "（未填区县）", f"{base_url}/#/findings" + (f"?{query}" if query else "")),
                r.total,
                *(r.by_type.get(t, 0) for t in types),
                *(r.by_status.get(s.value, 0) for s in Status),
                r.rectified,
                r.median_days_to_rectified,
                r.overdue,
                r.rectified_late,
            ]
        )
    sheet.row(
        [
            "合计",
            result.total,
            *(sum(r.by_type.get(t, 0) for r in result.regions) for t in types),
            *(sum(r.by_status.get(s.value, 0) for r in result.regions) for s in Status),
            result.rectified,
            result.median_days_to_rectified,
            result.overdue,
            result.rectified_late,
        ]
    )
    return _save(book)


def _items(
    book: Workbook, title: str, items: list[BulletinItem], at: str, base_url: str | None, zone: ZoneInfo
) -> None:
    sheet = Sheet(book.create_sheet(title), ["编号", "问题类型", "乡镇", "村", "整改时限", at, "此前已销号问题"], zone)
    for i in items:
        sheet.row(
            [
                finding_link(i.finding_id, base_url),
                type_zh(i.type),
                i.township,
                i.village,
                i.deadline,
                i.at,
                finding_link(i.recurrence_of, base_url),
            ]
        )


def ranking(bulletin: Bulletin, base_url: str | None) -> bytes:
    """乡镇排名 with the bulletin's lists (超期未改, 逾期整改, 反弹) on sheets of their own."""
    zone = ZoneInfo(bulletin.timezone)
    book = Workbook()
    sheet = Sheet(
        book.active,
        [
            "名次",
            "乡镇",
            "得分",
            "上期名次",
            "名次变化",
            "新发现问题",
            "村数",
            "每村问题",
            "按期整改",
            "逾期整改",
            "超期未改",
            "按期整改率",
            "反弹",
        ],
        zone,
    )
    book.active.title = "乡镇排名"
    for r in bulletin.ranking:
        sheet.row(
            [
                r.rank,
                r.township,
                r.score,
                r.previous_rank,
                r.change,
                r.problems,
                r.villages,
                r.problems_per_village,
                r.on_time,
                r.late,
                r.overdue,
                r.on_time_rate,
                r.recurrences,
            ]
        )
    for row in book.active.iter_rows(min_row=2, min_col=12, max_col=12):
        row[0].number_format = "0.0%"
    _items(book, "超期未改", bulletin.overdue, "—", base_url, zone)
    _items(book, "逾期整改", bulletin.late, f"整改时间（{zone.key}）", base_url, zone)
    _items(book, "反弹问题", bulletin.recurrences, f"发现时间（{zone.key}）", base_url, zone)
    return _save(book)
