"""HTTP API: thin FastAPI routes over the services; errors rendered in one place."""

from hygieia.api.app import create_app

__all__ = ["create_app"]
