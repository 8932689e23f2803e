"""The baseline for ``list_vs_bare``: a bare FastAPI JSON endpoint.

It answers ``GET /bare`` with a fixed JSON body of the same bytes as a real page of
records (captured from the server under test), from a plain ``def`` route like
Hygieia's, served by uvicorn with the same options as ``hygieia serve``: the
difference to the real endpoint is authentication, the query, the ORM and the schema.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Response


def make_app(payload: bytes) -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/bare")
    def bare() -> Response:
        return Response(payload, media_type="application/json")

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--payload", type=Path, required=True)
    args = parser.parse_args()
    app = make_app(args.payload.read_bytes())
    # The same options as hygieia.server.run (one process, h11 or whatever uvicorn picks).
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
