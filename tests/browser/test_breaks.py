"""A compliance officer signs in at 1024 px, lands on the open breaks list, opens a break an
operator proposed and approves it, in a real browser."""

import pytest

from reconciliation.breaks import break_acknowledge, break_propose
from reconciliation.models import Break
from tests import factories
from tests.browser.conftest import admin_login
from tests.workspace.breaks_helpers import break_of, finding, run_with

# serialized_rollback like every browser test: the database is left as the migrations made it
# (groups, content types) for the next one, which would otherwise meet a flushed one.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_compliance_lands_on_the_breaks_and_approves_an_operators_proposal(page, live_server):
    operator = factories.staff_user(group="operations", username="opal")
    factories.staff_user(group="compliance", username="carol")
    run_with(finding(symbol="TSLA"), finding(symbol="MSFT", signal_ids=("s-2",)))
    brk = break_of("TSLA")
    break_acknowledge(break_id=brk.pk, user=operator, comment="checking the fills")
    break_propose(break_id=brk.pk, user=operator, disposition="explained", reason="a late fill")

    page.set_viewport_size({"width": 1024, "height": 768})
    admin_login(page, live_server, "carol", "pw-for-tests-1", to_index=False)
    assert page.url.endswith("/admin/reconciliation/break/")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 2
    # Readable at 1024 px: the list fits the page without scrolling sideways.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1024, f"the list is {width} px wide"
    results = page.evaluate(
        "[document.querySelector('#changelist .results').scrollWidth,"
        " document.querySelector('#changelist .results').clientWidth]"
    )
    assert results[0] <= results[1], f"the list is cut off at 1024 px: {results}"

    page.locator("#result_list tbody tr", has_text="TSLA").locator("th a").click()
    page.wait_for_selector("#break-story")
    story = page.inner_text("#break-story")
    assert "a late fill" in story and "opal" in story
    assert page.locator("input[name=_save]").count() == 0
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024
    page.fill("#text-approve", "agreed with the desk")
    page.click("#action-approve button")
    page.wait_for_selector("ul.messagelist li.success")
    assert "approved and closed" in page.inner_text("ul.messagelist")
    assert "agreed with the desk" in page.inner_text("#break-story")
    brk = Break.objects.get(pk=brk.pk)
    assert (brk.state, brk.proposed_by_username, brk.approved_by_username) == (
        "closed",
        "opal",
        "carol",
    )
