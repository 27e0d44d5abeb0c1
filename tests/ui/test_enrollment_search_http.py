"""The enrollments list newest first, searched by contact and sequence, filtered by
state and sequence, with keyset pages that neither skip nor repeat (issue 11 item 14):
API and web page, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

from cadenza.services.enrollment import control as enrollment_control
from tests.conftest import assert_error, enroll_ids


def _people(world):
    ann = world.contact("ann@corp.example", firstname="Ann", lastname="Lee")
    bob = world.contact("bob@corp.example", firstname="Bob", lastname="Ray")
    cid = world.contact("cid@other.example", firstname="Cid", lastname="Annan")
    dee = world.contact("dee@corp.example", firstname="Dee", lastname="Moss")
    webinar = world.make_sequence(name="Webinar 100%_invite")
    ids = enroll_ids(world, [ann, bob, cid]) + enroll_ids(world, [dee], sequence=webinar)
    return ids, webinar


def _ids(response):
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["results"]]


def test_api_search_order_and_pages(api, world):
    ids, webinar = _people(world)
    assert _ids(api.get("/enrollments", params={"q": "ANN"})) == [ids[0], ids[2]]  # Ann, Annan
    assert _ids(api.get("/enrollments", params={"q": "webinar"})) == [ids[3]]
    assert _ids(api.get("/enrollments", params={"q": "100%_"})) == [ids[3]]  # literal % and _
    assert _ids(api.get("/enrollments", params={"q": "%"})) == [ids[3]]
    assert _ids(api.get("/enrollments", params={"q": "other.example"})) == [ids[2]]
    assert _ids(api.get("/enrollments", params={"q": "nobody"})) == []
    newest = _ids(api.get("/enrollments", params={"order": "newest"}))
    assert newest == sorted(ids, reverse=True)
    seen, cursor = [], None
    while True:
        params = {"order": "newest", "limit": 1, "q": "corp.example"}
        response = api.get("/enrollments", params={**params, "cursor": cursor or ""})
        seen += _ids(response)
        cursor = response.json()["next_cursor"]
        if not cursor:
            break
    assert seen == [ids[3], ids[1], ids[0]]
    enrollment_control.pause(api.ctx, ids[1])
    paused = api.get("/enrollments", params={"state": "paused", "order": "newest", "q": "bob"})
    assert _ids(paused) == [ids[1]]
    by_sequence = {"sequence_id": webinar.id, "q": "ann"}
    assert _ids(api.get("/enrollments", params=by_sequence)) == []
    assert_error(api.get("/enrollments", params={"order": "sideways"}), 422, "validation_error")
    assert_error(api.get("/enrollments", params={"q": "x" * 201}), 422, "validation_error")
    assert_error(api.get("/enrollments", params={"q": "a\x00b"}), 422, "validation_error")


def _page_ids(text: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-enrollment="(\d+)"', text)]


def test_web_page_lists_newest_first_and_searches(rep, world):
    ids, webinar = _people(world)
    page = rep.client.get("/enrollments")
    assert _page_ids(page.text) == sorted(ids, reverse=True)
    assert 'name="q"' in page.text
    assert _page_ids(rep.client.get("/enrollments?q=ann").text) == [ids[2], ids[0]]
    found = rep.client.get(f"/enrollments?q=webinar&sequence={webinar.id}")
    assert _page_ids(found.text) == [ids[3]]
    assert _page_ids(rep.client.get(f"/enrollments?q=ann&sequence={webinar.id}").text) == []
    assert rep.client.get("/enrollments?q=" + "x" * 201).status_code == 422


def test_web_pages_carry_the_search_and_never_repeat(rep, world, monkeypatch):
    from cadenza.web.ui import enrollments as page_module

    ids, _ = _people(world)
    monkeypatch.setattr(page_module, "PER_PAGE", 1)
    seen, path = [], "/enrollments?q=corp.example"
    while path:
        text = rep.client.get(path).text
        seen += _page_ids(text)
        more = re.search(r'<a href="(/enrollments\?[^"]+)" rel="next"', text)
        path = more.group(1).replace("&amp;", "&") if more else None
        assert path is None or "q=corp.example" in path
    assert seen == [ids[3], ids[1], ids[0]]
