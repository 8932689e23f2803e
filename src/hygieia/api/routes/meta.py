"""Service metadata: health and the settings a browser client needs."""

from __future__ import annotations

from fastapi import APIRouter

from hygieia import __version__
from hygieia.api.deps import SettingsDep
from hygieia.api.schemas import ClientConfigPublic

router = APIRouter(tags=["meta"])


@router.get("/health")
def health() -> dict[str, str]:
    """Liveness probe."""
    return {"status": "ok", "version": __version__}


@router.get("/config", response_model=ClientConfigPublic)
def client_config(settings: SettingsDep) -> ClientConfigPublic:
    """Limits and timeouts the clients honour."""
    return ClientConfigPublic(
        idle_lock_seconds=settings.idle_lock_seconds,
        max_record_bytes=settings.max_record_bytes,
        gateway_origins=settings.gateway_origins,
        max_link_bytes=settings.max_link_bytes,
    )
