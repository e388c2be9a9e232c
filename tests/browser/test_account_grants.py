"""A user granted one account sees only its rows in a real browser: the attempts list, its
account column and its account filter (docs/design.md section 16)."""

import pytest

from tests import factories
from tests.browser.conftest import admin_login
from workspace.models import AccountGrant

# serialized_rollback: the files after this one (by name) restore the database as the migrations
# made it; a plain flush here would leave them content types to clash with (test_dashboard.py).
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_a_user_granted_the_desk_sees_only_desk_attempts_and_filters(page, live_server):
    for n in range(3):
        factories.order_attempt(account="desk", client_order_id=f"bo-desk{n}-entry")
        factories.order_attempt(account="client", client_order_id=f"bo-client{n}-entry")
    dana = factories.staff_user(group="compliance", username="dana", password="pw-for-tests-1")
    AccountGrant.objects.create(account="desk", user=dana, created_by="root")

    admin_login(page, live_server, "dana", "pw-for-tests-1")
    page.goto(f"{live_server.url}/admin/orders/orderattempt/")
    page.wait_for_selector("#result_list")

    ids = page.locator("#result_list tbody th").all_inner_texts()
    assert sorted(ids) == [f"bo-desk{n}-entry" for n in range(3)]
    assert set(page.locator("#result_list tbody td.field-account").all_inner_texts()) == {"desk"}
    assert "bo-client" not in page.inner_text("#content")
    account_filter = page.locator("#changelist-filter details[data-filter-title='account']")
    assert account_filter.locator("li a").all_inner_texts() == ["All", "desk"]

    account_filter.locator("li a", has_text="desk").click()
    page.wait_for_url("**account=desk**")
    assert len(page.locator("#result_list tbody tr").all()) == 3
