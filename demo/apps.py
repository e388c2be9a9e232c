from django.apps import AppConfig


class DemoConfig(AppConfig):
    """``manage.py demo``: the whole product on the embedded defaults, against the paper broker.

    The top floor beside the workspace (docs/design.md section 1): it drives every app and is
    the one place outside the tests allowed to import the paper broker (``brokerops.sim``); no app
    imports it."""

    name = "demo"
    verbose_name = "Demo"
