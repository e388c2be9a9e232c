"""Database triggers that make audit tables append-only (installed by migrations).

PostgreSQL: a statement-level trigger refuses every UPDATE and DELETE (TRUNCATE is a table
owner's maintenance statement and is not refused; the chain heads expose it all the same).

SQLite: row triggers refuse UPDATE and DELETE unless the table ``audit_maintenance`` holds a row.
That table is not a model: only a deliberate ``INSERT`` opens it, and it exists for one reason:
Django's ``flush`` empties tables with DELETE on SQLite, and two resets need it (the demo's and
the test suite's between transactional tests). :func:`audit_maintenance` opens it for those two
only (:data:`MAINTENANCE_REASONS`); any other caller is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections

MESSAGE = "audit table {table} is append-only"
#: The only resets the SQLite maintenance door opens for: the demo's (``manage.py demo``) and
#: the test suite's flush between transactional tests. Both empty every table, heads included.
MAINTENANCE_REASONS = frozenset({"demo reset", "test database reset"})
_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION brokerops_audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
"""


def _names(table: str) -> tuple[str, str]:
    return f"{table}_no_update", f"{table}_no_delete"


def install(schema_editor: Any, tables: list[str]) -> None:
    """Install the append-only triggers on ``tables`` (idempotent)."""
    vendor = schema_editor.connection.vendor
    with schema_editor.connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute(_PG_FUNCTION)
            for table in tables:
                no_update, _ = _names(table)
                cursor.execute(f'DROP TRIGGER IF EXISTS "{no_update}" ON "{table}"')
                cursor.execute(
                    f'CREATE TRIGGER "{no_update}" BEFORE UPDATE OR DELETE ON "{table}" '
                    "FOR EACH STATEMENT EXECUTE FUNCTION brokerops_audit_append_only()"
                )
        elif vendor == "sqlite":
            cursor.execute("CREATE TABLE IF NOT EXISTS audit_maintenance (reason TEXT NOT NULL)")
            for table in tables:
                for name, op in zip(_names(table), ("UPDATE", "DELETE"), strict=True):
                    message = f"{MESSAGE.format(table=table)}: {op} refused"
                    cursor.execute(f'DROP TRIGGER IF EXISTS "{name}"')
                    # Names come from migrations, never from input.
                    sql = (
                        f'CREATE TRIGGER "{name}" BEFORE {op} ON "{table}" '  # noqa: S608
                        "WHEN NOT EXISTS (SELECT 1 FROM audit_maintenance) "
                        f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
                    )
                    cursor.execute(sql)
        else:
            raise NotImplementedError(
                f"append-only triggers need PostgreSQL or SQLite, not {vendor}"
            )


def remove(schema_editor: Any, tables: list[str]) -> None:
    """Drop the triggers (a migration's reverse)."""
    vendor = schema_editor.connection.vendor
    with schema_editor.connection.cursor() as cursor:
        for table in tables:
            if vendor == "postgresql":
                cursor.execute(f'DROP TRIGGER IF EXISTS "{_names(table)[0]}" ON "{table}"')
            else:
                for name in _names(table):
                    cursor.execute(f'DROP TRIGGER IF EXISTS "{name}"')


def install_operation(tables: list[str]) -> Any:
    """The migration operation installing the triggers on ``tables`` (reversible)."""
    from django.db import migrations

    return migrations.RunPython(
        lambda apps, schema_editor: install(schema_editor, tables),
        lambda apps, schema_editor: remove(schema_editor, tables),
    )


def remove_operation(tables: list[str]) -> Any:
    """The migration operation dropping the triggers on ``tables`` so that a later operation of
    the same migration can fill a new column (its reverse installs them again); the migration
    installs them again with :func:`install_operation` once the rows are filled."""
    from django.db import migrations

    return migrations.RunPython(
        lambda apps, schema_editor: remove(schema_editor, tables),
        lambda apps, schema_editor: install(schema_editor, tables),
    )


@contextmanager
def audit_maintenance(reason: str, *, using: str = "default") -> Iterator[None]:
    """Let DELETE through the SQLite triggers inside the block (PostgreSQL: no effect).

    Only for the resets of :data:`MAINTENANCE_REASONS` (the demo's, the test suite's); any
    other reason raises :class:`PermissionError` on every database, before anything opens.
    """
    if reason not in MAINTENANCE_REASONS:
        raise PermissionError(
            f"audit maintenance opens only for {', '.join(sorted(MAINTENANCE_REASONS))}:"
            f" not for {reason!r}"
        )
    connection = connections[using]
    if connection.vendor != "sqlite":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO audit_maintenance (reason) VALUES (%s)", [reason])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_maintenance")
