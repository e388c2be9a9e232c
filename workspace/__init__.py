"""The compliance and operator workspace: the admin of every app, the timeline, the dashboard,
the exports (docs/design.md section 1: the top floor; it reads every app, no app imports it)."""
