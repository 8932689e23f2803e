"""The baseline for ``list_vs_bare``: a bare FastAPI JSON endpoint.

It answers ``GET /bare`` with the same page of records as the server under test (a
page captured from it, held in memory), from a plain ``def`` route with the same
response model (``RecordList``), so FastAPI validates and serializes the same bytes
the same way; it is served by uvicorn with the same options as ``hygieia serve``.
What the real endpoint does on top is its own cost: authentication, the queries,
the ORM, building the schema objects.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from hygieia.api.schemas import RecordList


def make_app(payload: bytes) -> FastAPI:
    app = FastAPI()
    page = RecordList.model_validate_json(payload)

    @app.get("/api/v1/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/bare")
    def bare() -> RecordList:
        return page

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--payload", type=Path, required=True)
    args = parser.parse_args()
    app = make_app(args.payload.read_bytes())
    # The same options as hygieia.server.serve (one process, h11 or whatever uvicorn picks).
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        access_log=False,
        log_config=None,
        proxy_headers=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
