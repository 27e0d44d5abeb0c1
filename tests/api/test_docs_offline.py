"""The API explorer works without internet: every file it loads comes from this server."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

URL_ATTRIBUTE = re.compile(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""")


def test_docs_page_references_no_external_host_and_its_assets_are_served(api):
    page = api.client.get("/docs")
    assert page.status_code == 200
    urls = URL_ATTRIBUTE.findall(page.text)
    assert any(u.endswith("swagger-ui-bundle.js") for u in urls), urls
    assert not re.search(r"https?://", page.text), "the page names another host"
    for url in urls:
        parts = urlsplit(url)
        assert not parts.netloc and url.startswith("/"), url
        loaded = api.client.get(url)
        assert loaded.status_code == 200, url
    script = api.client.get("/docs/assets/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in script.text
    assert api.client.get("/openapi.json").json()["info"]["title"] == "Cadenza API"


def test_docs_assets_cannot_leave_their_folder(api):
    for path in ("/docs/assets/../../../pyproject.toml", "/docs/assets/%2e%2e/index.j2"):
        assert api.client.get(path).status_code == 404
