"""The bulletin as one self-contained HTML page that prints on A4: what an office sends out.

Everything is in the file (styles inline, photos as data: URIs), so it can be mailed, archived or
printed from any browser without the service. Text from the ledger is escaped. The numbers are
inference_api/bulletin.py's; this module only lays them out.
"""

from __future__ import annotations

import base64
import io
from datetime import date, datetime
from html import escape
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from inference_api import store
from inference_api.schemas import Bulletin, BulletinItem, BulletinPhoto
from inference_api.settings import Settings
from inference_api.storage import ImageStore
from model.taxonomy import PROBLEM_TYPES, PROBLEMS_BY_KEY

PHOTO_SIDE = 960
"""Longest side of a photo in the page: sharp on A4 at half the width, small enough to mail."""

STYLE = """
@page { size: A4; margin: 14mm 12mm; }
* { box-sizing: border-box; }
body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "PingFang SC", sans-serif;
  color: #111; margin: 0 auto; max-width: 186mm; font-size: 10.5pt; line-height: 1.5; padding: 8mm 0; }
h1 { font-size: 18pt; text-align: center; margin: 0 0 2mm; color: #b00; letter-spacing: 0.05em; }
h2 { font-size: 12.5pt; border-left: 4px solid #b00; padding-left: 2mm; margin: 6mm 0 2mm; break-after: avoid; }
.meta { text-align: center; color: #444; margin: 0 0 4mm; font-size: 9.5pt; }
.empty { border: 1px solid #999; padding: 4mm; text-align: center; font-size: 12pt; }
.lead { margin: 1mm 0 2mm; }
table { width: 100%; border-collapse: collapse; margin: 1mm 0 3mm; break-inside: auto; }
th, td { border: 1px solid #777; padding: 1mm 1.5mm; text-align: center; }
th { background: #eee; font-weight: 600; }
td.name { text-align: left; }
#ranking { font-size: 9pt; }
#ranking td.name { white-space: nowrap; }
tr { break-inside: avoid; }
.up { color: #070; } .down { color: #b00; }
.mine { background: #fff4cc; }
.note { color: #444; font-size: 9pt; }
.photos { display: grid; grid-template-columns: 1fr 1fr; gap: 3mm; }
figure { margin: 0; break-inside: avoid; }
figure img { width: 100%; height: auto; border: 1px solid #999; display: block; }
figcaption { font-size: 9pt; color: #333; }
a { color: inherit; }
@media print { a { text-decoration: none; } }
"""


def _type(key: str) -> str:
    found = PROBLEMS_BY_KEY.get(key)
    return found.name_zh if found else key


def _day(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _time(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _place(township: str | None, village: str | None) -> str:
    return escape(" ".join(p for p in (township, village) if p) or "（未填地点）")


def title(bulletin: Bulletin) -> str:
    place = bulletin.region + (bulletin.township or "")
    if "-W" in bulletin.period:
        year, week = bulletin.period.split("-W")
        return f"{place}农村人居环境整治周通报（{year}年第{int(week)}周）"
    year, month = bulletin.period.split("-")
    return f"{place}农村人居环境整治月通报（{year}年{int(month)}月）"


def _link(finding_id: int, base_url: str | None) -> str:
    text = f"#{finding_id}"
    return f'<a href="{escape(base_url)}/#/findings/{finding_id}">{text}</a>' if base_url else text


def _new_section(b: Bulletin) -> str:
    types = [p.key for p in PROBLEM_TYPES if b.new_by_type.get(p.key)]
    lead = f'<p class="lead">本期新发现问题 <strong id="new-total">{b.new_total}</strong> 个'
    lead += "".join(f"，{_type(t)} {b.new_by_type[t]} 个" for t in types)
    lead += f"；另有 {b.awaiting_review} 个疑似问题待核实，未计入。</p>" if b.awaiting_review else "。</p>"
    if not types:
        return lead
    head = "".join(f"<th>{escape(_type(t))}</th>" for t in types)
    rows = "".join(
        f'<tr><td class="name">{escape(row.township or "（未填乡镇）")}</td>'
        + "".join(f"<td>{row.by_type.get(t, 0)}</td>" for t in types)
        + f"<td>{row.total}</td></tr>"
        for row in b.new_by_township
    )
    total = "".join(f"<td>{b.new_by_type.get(t, 0)}</td>" for t in types)
    return (
        f'{lead}<table id="new-by-township"><thead><tr><th>乡镇</th>{head}<th>合计</th></tr></thead>'
        f"<tbody>{rows}<tr><th>合计</th>{total}<th>{b.new_total}</th></tr></tbody></table>"
    )


def _items(items: list[BulletinItem], at_label: str | None, zone: ZoneInfo, base_url: str | None, id_: str) -> str:
    if not items:
        return ""
    head = "<th>编号</th><th>类型</th><th>地点</th><th>整改时限</th>" + (f"<th>{at_label}</th>" if at_label else "")
    rows = "".join(
        f"<tr><td>{_link(i.finding_id, base_url)}</td><td>{escape(_type(i.type))}</td>"
        f'<td class="name">{_place(i.township, i.village)}</td>'
        f"<td>{i.deadline.isoformat() if i.deadline else '–'}</td>"
        + (f"<td>{_time(i.at, zone) if i.at else '–'}</td>" if at_label else "")
        + "</tr>"
        for i in items
    )
    return f'<table id="{id_}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _rectification_section(b: Bulletin, zone: ZoneInfo, base_url: str | None) -> str:
    lead = (
        f'<p class="lead">本期按期整改 <strong id="on-time">{b.rectified_on_time}</strong> 个，'
        f'逾期整改 <strong id="late">{b.rectified_late}</strong> 个；'
        f'截至{_time(b.as_of, zone)}仍超期未整改 <strong id="still-overdue">{b.still_overdue}</strong> 个。</p>'
    )
    late = _items(b.late, "整改时间", zone, base_url, "late-list")
    overdue = _items(b.overdue, None, zone, base_url, "overdue-list")
    return lead + (f"<p>逾期整改：</p>{late}" if late else "") + (f"<p>超期未整改：</p>{overdue}" if overdue else "")


def _recurrence_section(b: Bulletin, zone: ZoneInfo, base_url: str | None) -> str:
    lead = f'<p class="lead">本期反弹问题 <strong id="recurrences">{len(b.recurrences)}</strong> 个。</p>'
    if not b.recurrences:
        return lead
    rows = "".join(
        f"<tr><td>{_link(i.finding_id, base_url)}</td><td>{escape(_type(i.type))}</td>"
        f'<td class="name">{_place(i.township, i.village)}</td><td>{_time(i.at, zone) if i.at else "–"}</td>'
        f"<td>{_link(i.recurrence_of, base_url) if i.recurrence_of else '–'}</td></tr>"
        for i in b.recurrences
    )
    head = "<th>编号</th><th>类型</th><th>地点</th><th>发现时间</th><th>此前已销号问题</th>"
    return f'{lead}<table id="recurrence-list"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def _change(change: int | None) -> str:
    if change is None:
        return "新上榜"
    if change > 0:
        return f'<span class="up">↑{change}</span>'
    if change < 0:
        return f'<span class="down">↓{-change}</span>'
    return "–"


def _ranking_section(b: Bulletin) -> str:
    if not b.ranking:
        return '<p class="lead">本期没有可排名的乡镇。</p>'
    rows = "".join(
        f'<tr class="{"mine" if r.township == b.township else ""}" data-township="{escape(r.township)}">'
        f'<td>{r.rank}</td><td class="name">{escape(r.township)}</td><td>{r.score:.2f}</td>'
        f"<td>{_change(r.change)}</td><td>{r.problems}</td><td>{r.villages}</td><td>{r.problems_per_village:.2f}</td>"
        f"<td>{r.on_time}</td><td>{r.late}</td><td>{r.overdue}</td><td>{r.on_time_rate * 100:.1f}%</td>"
        f"<td>{r.recurrences}</td></tr>"
        for r in b.ranking
    )
    head = (
        "<th>名次</th><th>乡镇</th><th>得分</th><th>名次变化</th><th>新发现问题</th><th>村数</th><th>每村问题</th>"
        "<th>按期整改</th><th>逾期整改</th><th>超期未改</th><th>按期整改率</th><th>反弹</th>"
    )
    w = b.weights
    formula = (
        f'<p class="note">得分 = {w["on_time_rate"]:g} × 按期整改率 − {w["problems_per_village"]:g} × 每村问题数 − '
        f"{w['overdue']:g} × 超期未改数 − {w['recurrences']:g} × 反弹数；按期整改率 = 按期整改 ÷（按期整改 + "
        "逾期整改 + 超期未改），三者皆无时为 100%。得分相同名次并列；名次变化与上期相比。</p>"
    )
    return f'<table id="ranking"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{formula}'


def _photo_section(photos: list[BulletinPhoto], jpegs: dict[int, bytes], zone: ZoneInfo) -> str:
    if not photos:
        return '<p class="lead">本期没有典型问题照片。</p>'
    figures = []
    for p in photos:
        data = base64.b64encode(jpegs[p.finding_id]).decode() if p.finding_id in jpegs else None
        img = f'<img src="data:image/jpeg;base64,{data}" alt="问题 #{p.finding_id}">' if data else ""
        figures.append(
            f'<figure data-finding="{p.finding_id}">{img}<figcaption>#{p.finding_id} {escape(_type(p.type))} '
            f"（置信度 {p.score:.2f}）· {_place(p.township, p.village)} · {_time(p.observed_at, zone)}"
            "</figcaption></figure>"
        )
    return f'<div class="photos">{"".join(figures)}</div>'


def render(bulletin: Bulletin, jpegs: dict[int, bytes], base_url: str | None = None) -> str:
    """The bulletin page; `jpegs` holds each photo's picture with its box, by finding id."""
    zone = ZoneInfo(bulletin.timezone)
    b = bulletin
    meta = (
        f"{_day(b.first_day)}—{_day(b.last_day)} · 统计截至 {_time(b.as_of, zone)}（{escape(b.timezone)}）"
        f" · 生成于 {_time(b.made_at, zone)}"
    )
    if b.empty:
        place = escape(b.region + (b.township or ""))
        body = f'<p class="empty" id="empty">本期{place}没有新发现、整改或超期的问题记录。</p>'
        sections = [("乡镇排名", _ranking_section(b))] if b.ranking else []
    else:
        body = ""
        sections = [
            ("新发现问题", _new_section(b)),
            ("整改情况", _rectification_section(b, zone, base_url)),
            ("反弹问题", _recurrence_section(b, zone, base_url)),
            ("乡镇排名", _ranking_section(b)),
            ("典型问题照片", _photo_section(b.photos, jpegs, zone)),
        ]
    numerals = "一二三四五六七八九"
    content = "".join(f"<h2>{numerals[i]}、{name}</h2>{html}" for i, (name, html) in enumerate(sections))
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{escape(title(b))}</title><style>{STYLE}</style></head>"
        f'<body><h1>{escape(title(b))}</h1><p class="meta">{meta}</p>{body}{content}</body></html>'
    )


def shrink(jpeg: bytes) -> bytes:
    """A drawn photo at most PHOTO_SIDE on its longest side, as JPEG."""
    from PIL import Image

    image = Image.open(io.BytesIO(jpeg))
    image.thumbnail((PHOTO_SIDE, PHOTO_SIDE))
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=82)
    return out.getvalue()


def stored_photos(session: Session, images: ImageStore, photos: list[BulletinPhoto]) -> dict[int, bytes]:
    """The stored bytes of the bulletin's photos, by image id."""
    found = {p.image_id: store.get_image(session, p.image_id) for p in photos}
    return {image_id: images.read(row.sha256) for image_id, row in found.items() if row is not None}


def photo_jpegs(photos: list[BulletinPhoto], stored: dict[int, bytes], settings: Settings) -> dict[int, bytes]:
    """Each photo with its finding's box drawn, shrunk for the page; CPU work (run it on the detector pool)."""
    from inference_api.services import Drawn, annotate

    return {
        p.finding_id: shrink(
            annotate(
                stored[p.image_id], [Drawn(p.type, p.score, tuple(p.box.model_dump().values()), p.extent)], settings
            )
        )
        for p in photos
        if p.image_id in stored
    }
