from django.apps import AppConfig


class WorkspaceConfig(AppConfig):
    name = "workspace"
    verbose_name = "Compliance workspace"

    def ready(self) -> None:
        from django.core import checks

        from workspace.checks import admin_actions_need_more_than_view

        checks.register(admin_actions_need_more_than_view, checks.Tags.admin)
