"""The API explorer at `/docs`, served wholly from this server.

FastAPI's default page loads Swagger UI's script and style from a CDN, so on a machine
without internet (or behind a strict proxy) `/docs` is a blank page. The files come
instead from the `swagger-ui-bundle` package and are served under `/docs/assets/`;
the page references no other host. ReDoc has no packaged copy, so `/redoc` is off.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/docs/assets"


def install(app: FastAPI) -> None:
    """Call with `docs_url=None, redoc_url=None` given to FastAPI."""
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_path), name="api-docs-assets")

    @app.get("/docs", include_in_schema=False)
    def api_explorer():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} — explorer",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )
