"""`envwatch bulletin`: write a period's bulletin (HTML, A4 printable) and ranking (.xlsx) to a folder.

Reads the service's database and image folder (`ENVWATCH_DATABASE_URL`, `ENVWATCH_DATA_DIR`,
and the bulletin's settings: time zone, ranking weights) and computes exactly what
`GET /v1/bulletin.html` and `/v1/bulletin.xlsx` serve (inference_api/bulletin.py).
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from inference_api import bulletin, bulletin_page, db, workbook
from inference_api.settings import get_settings
from inference_api.storage import ImageStore
from model.files import write_whole

UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f]')
"""Characters no file name may hold on Windows or Linux: replaced in names made of place names."""


def main(args: argparse.Namespace) -> int:
    settings = get_settings()
    try:
        period = bulletin.parse_period(args.period) if args.period else bulletin.current_period(settings)
    except ValueError as exc:
        print(f"envwatch bulletin: {exc}", file=sys.stderr)
        return 2
    if not args.region.strip():
        print("envwatch bulletin: --region must name a county", file=sys.stderr)
        return 2
    engine = db.make_engine(settings.database_url)
    try:
        db.upgrade(engine)
        with db.make_sessionmaker(engine)() as session:
            result = bulletin.make(session, settings, period, args.region, args.township)
            stored = bulletin_page.stored_photos(session, ImageStore(settings.data_dir), result.photos)
    finally:
        engine.dispose()
    base_url = args.base_url.rstrip("/") if args.base_url else None
    page = bulletin_page.render(result, bulletin_page.photo_jpegs(result.photos, stored, settings), base_url)
    name = UNSAFE.sub("_", "-".join(p for p in ("bulletin", period.key, args.region, args.township) if p))
    args.out.mkdir(parents=True, exist_ok=True)
    html, xlsx = args.out / f"{name}.html", args.out / f"{name}.xlsx"
    write_whole(html, page.encode(), 0o644)
    write_whole(xlsx, workbook.ranking(result, base_url), 0o644)
    print(json.dumps({"html": str(html), "xlsx": str(xlsx), "empty": result.empty}, ensure_ascii=False))
    return 0
