"""A break's page (docs/design.md section 17): its story (runs, events, comments, who proposed and
who approved) and the actions the user may take, as POST forms that go through the services;
forged POSTs change nothing; nothing is editable through the admin's own forms."""

import pytest
from django.contrib.auth.models import User

from reconciliation.breaks import (
    TEXT_MAX,
    break_acknowledge,
    break_comment,
    break_propose,
    breaks_close_repaired,
)
from reconciliation.models import Break
from tests import factories
from tests.workspace.breaks_helpers import (
    LIST_URL,
    act_url,
    break_of,
    finding,
    page_url,
    run_with,
    state,
    view_only_user,
)
from workspace import breaks as words

pytestmark = pytest.mark.django_db

PW = "pw-for-tests-1"


@pytest.fixture
def people():
    return {
        "opal": factories.staff_user(group="operations", username="opal"),
        "oscar": factories.staff_user(group="operations", username="oscar"),
        "carol": factories.staff_user(group="compliance", username="carol"),
        "root": User.objects.create_superuser("root", password=PW),
    }


@pytest.fixture
def brk():
    """TSLA, found by three runs."""
    for _ in range(3):
        run_with(finding(symbol="TSLA", signal_ids=("s-1",), client_order_id="bo-s-1-entry"))
    return break_of("TSLA")


def _as(client, user):
    client.force_login(user)
    return client


def _act(client, brk, action, text="", **extra):
    return client.post(act_url(brk), {"action": action, "text": text, **extra}, follow=True)


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def _proposed(brk, people):
    break_acknowledge(break_id=brk.pk, user=people["opal"], comment="mine")
    break_propose(
        break_id=brk.pk, user=people["opal"], disposition="explained", reason="a late fill"
    )


def test_the_page_tells_the_story(client, people, brk):
    _proposed(brk, people)
    page = _as(client, people["carol"]).get(page_url(brk))
    assert page.status_code == 200
    html = page.content.decode()
    assert page.context["occurrences"].paginator.count == 3
    for run in brk.mismatches.values_list("run_id", flat=True):
        assert f'/admin/reconciliation/reconciliationrun/{run}/change/">run #{run}</a>' in html
    kinds = [e.kind for e in page.context["events"]]
    assert kinds == ["opened", "acknowledged", "proposed"]
    assert "a late fill" in html and "opal" in html
    assert "/admin/timeline/bo-s-1-entry/" in html  # the order's timeline
    # Compliance may approve or reject (not take it or propose: those are operations').
    assert [a.name for a in page.context["actions"]] == ["approve", "reject", "comment"]
    assert 'name="_save"' not in html and "deletelink" not in html


def test_the_runs_are_paged(client, people, brk, monkeypatch):
    monkeypatch.setattr(words, "STORY_PAGE", 2)
    first = _as(client, people["carol"]).get(page_url(brk))
    second = client.get(page_url(brk) + "?runs=2")
    assert len(first.context["occurrences"]) == 2 and len(second.context["occurrences"]) == 1
    newest = {m.pk for m in first.context["occurrences"]}
    assert not newest & {m.pk for m in second.context["occurrences"]}


def test_operations_take_and_propose_compliance_approves_through_the_page(client, people, brk):
    _as(client, people["opal"])
    assert f"Break #{brk.pk} taken." in _messages(_act(client, brk, "acknowledge", "mine"))
    _act(client, brk, "propose", "a late fill", disposition="accepted")
    brk.refresh_from_db()
    assert (brk.state, brk.disposition, brk.proposed_by_username) == (
        "proposed",
        "accepted",
        "opal",
    )

    _as(client, people["carol"])
    done = _act(client, brk, "approve", "agreed")
    assert done.redirect_chain[-1][0] == page_url(brk)
    brk.refresh_from_db()
    assert (brk.state, brk.approved_by_username) == ("closed", "carol")
    html = client.get(page_url(brk)).content.decode()
    assert "agreed" in html and "Approved (closed)" in html


def test_a_rejection_needs_a_reason_and_reopens(client, people, brk):
    _proposed(brk, people)
    _as(client, people["carol"])
    refused = _act(client, brk, "reject", "")
    assert any("A reason is required" in m for m in _messages(refused))
    assert Break.objects.get(pk=brk.pk).state == "proposed"
    _act(client, brk, "reject", "not explained enough")
    assert Break.objects.get(pk=brk.pk).state == "open"


def test_compliance_reviews_a_repair(client, people):
    _, rows = run_with(finding(symbol="NVDA"))
    breaks_close_repaired(run=factories.reconciliation_run(), mismatches=rows)
    brk = break_of("NVDA")
    _as(client, people["carol"])
    assert "review" in [a.name for a in client.get(page_url(brk)).context["actions"]]
    _act(client, brk, "review", "the repair was right")
    assert not Break.objects.get(pk=brk.pk).needs_review


def test_a_comment_by_anyone_who_works_breaks(client, people, brk):
    _as(client, people["carol"])
    _act(client, brk, "comment", "asked the desk")
    assert brk.events.filter(kind="commented", actor="carol", message="asked the desk").exists()


def test_html_in_a_comment_shows_as_text(client, people, brk):
    break_comment(break_id=brk.pk, user=people["opal"], text="<script>alert('x')</script><b>b</b>")
    html = _as(client, people["carol"]).get(page_url(brk)).content.decode()
    assert "<script>alert" not in html and "<b>b</b>" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&lt;b&gt;b&lt;/b&gt;" in html


def test_a_100_kb_comment_is_refused_with_the_message(client, people, brk):
    before = state(brk)
    response = _act(_as(client, people["opal"]), brk, "comment", "x" * 100_000)
    assert f"Break #{brk.pk}: A comment is 100,000 characters; the limit is {TEXT_MAX:,}" in (
        _messages(response)
    )
    assert state(brk) == before


ACTIONS = ["acknowledge", "propose", "approve", "reject", "review", "comment"]


@pytest.mark.parametrize("action", ACTIONS)
def test_a_view_only_user_posting_any_action_changes_nothing(client, people, brk, action):
    _proposed(brk, people)  # a state where approve and reject apply
    _as(client, view_only_user())
    page = client.get(page_url(brk))
    assert page.status_code == 200 and page.context["actions"] == []
    assert b"<textarea" not in page.content
    before = state(brk)
    response = _act(client, brk, action, "forged", disposition="explained")
    assert response.status_code == 200
    assert any("you may not" in m for m in _messages(response))
    assert state(brk) == before


def test_an_operator_posting_approve_is_refused(client, people, brk):
    _proposed(brk, people)
    before = state(brk)
    response = _act(_as(client, people["oscar"]), brk, "approve", "forged")
    assert any("you may not approve" in m for m in _messages(response))
    assert state(brk) == before


@pytest.mark.parametrize("who", ["carol", "root"])
def test_the_proposer_cannot_approve_even_a_superuser(client, people, brk, who):
    user = people[who]
    if who == "carol":  # compliance who may propose too: four eyes still hold
        from django.contrib.auth.models import Permission

        user.user_permissions.add(Permission.objects.get(codename="propose_break"))
        user = User.objects.get(pk=user.pk)
    break_acknowledge(break_id=brk.pk, user=user, comment="mine")
    break_propose(break_id=brk.pk, user=user, disposition="explained", reason="why")
    _as(client, user)
    assert "approve" not in [a.name for a in client.get(page_url(brk)).context["actions"]]
    before = state(brk)
    response = _act(client, brk, "approve", "self-approved")
    assert any("you may not approve" in m for m in _messages(response))
    assert state(brk) == before


def test_a_break_of_an_account_not_granted_is_404_to_act_on(client, people):
    from workspace.models import AccountGrant

    run_with(finding(symbol="AMZN"), account="client")
    brk = break_of("AMZN")
    AccountGrant.objects.create(account="default", user=people["carol"], created_by="root")
    before = state(brk)
    _as(client, people["carol"])
    assert client.post(act_url(brk), {"action": "comment", "text": "x"}).status_code == 404
    assert client.get(page_url(brk)).status_code == 404
    assert state(brk) == before


def test_nothing_is_editable_through_the_admin_forms_superuser_included(client, people, brk):
    _as(client, people["root"])
    before = state(brk)
    forged = {"state": "closed", "reason": "forged", "_save": "Save"}
    assert client.post(page_url(brk), forged).status_code == 403
    assert client.post(LIST_URL + "add/", forged).status_code == 403
    assert client.post(f"{LIST_URL}{brk.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get(act_url(brk)).status_code == 405
    assert state(brk) == before


def test_the_act_view_needs_a_csrf_token(people, brk):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(people["opal"])
    before = state(brk)
    assert strict.post(act_url(brk), {"action": "comment", "text": "x"}).status_code == 403
    assert state(brk) == before


def test_a_break_page_shown_is_on_the_access_log_and_a_refused_one_is_not(client, people, brk):
    from audit.models import AccessRecord
    from workspace.models import AccountGrant

    _as(client, people["carol"])
    assert client.get(page_url(brk), {"runs": "2"}).status_code == 200
    (record,) = AccessRecord.objects.filter(what="break")
    assert (record.username, record.object_id, record.query) == ("carol", str(brk.pk), "runs=2")
    AccountGrant.objects.create(account="elsewhere", user=people["carol"], created_by="root")
    assert client.get(page_url(brk)).status_code == 404
    assert AccessRecord.objects.filter(what="break").count() == 1
