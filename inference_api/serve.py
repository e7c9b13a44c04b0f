"""`envwatch serve`: run the inspection service with uvicorn.

Configuration comes from `ENVWATCH_*` environment variables (see `settings.Settings`); with none
set this is the embedded default: SQLite and images under ./var, and a local admin key created
and logged once on first start.
"""

from __future__ import annotations

import argparse

import uvicorn

from inference_api.app import create_app
from inference_api.observability import UVICORN_LOG_CONFIG


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve `create_app()` on host:port until interrupted."""
    uvicorn.run(
        create_app(), host=host, port=port, proxy_headers=False, server_header=False, log_config=UVICORN_LOG_CONFIG
    )


def main(args: argparse.Namespace) -> int:
    serve(args.host, args.port)
    return 0
