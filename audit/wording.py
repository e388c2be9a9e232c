"""A verification in words (docs/design.md section 19): a sentence per chain, never a JSON blob.

Each sentence says how many rows were recomputed, how many recorded heads were checked and
whether they are signed, how many of the newest rows no head covers yet, and the first broken
link when there is one. Unsigned heads are called out on their own: a head without a signature
can be rewritten together with its chain by whoever can write the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from .models import AuditVerification

#: Reports that are not chains (the summary rows checked against their events).
_SUMMARIES_NOTE = "summary"


@dataclass(frozen=True)
class Sentence:
    chain: str
    text: str
    ok: bool


def chain_label(name: str) -> str:
    """A chain's name as people read it: ``order_events`` -> "order events"."""
    return name.replace("_", " ")


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def chain_sentence(name: str, chain: dict) -> Sentence:
    """One chain's report (``ChainReport.as_dict``) as a sentence."""
    rows = chain.get("rows", 0)
    heads = chain.get("heads_checked", 0)
    problems = chain.get("problems", 0)
    parts = [f"{_plural(rows, 'row')} recomputed"]
    if heads:
        unsigned = chain.get("unsigned")
        if unsigned is None:
            signed = "signatures not counted (an older verification)"
        elif unsigned == 0:
            signed = "all signed"
        elif unsigned == heads:
            signed = "none signed"
        else:
            signed = f"{unsigned:,} unsigned"
        parts.append(f"{_plural(heads, 'recorded head')} checked, {signed}")
    elif rows:
        parts.append("no recorded head yet")
    uncovered = chain.get("uncovered", 0)
    if uncovered:
        parts.append(f"the newest {_plural(uncovered, 'row')} not yet covered by a head")
    if problems:
        verdict = f"BROKEN: {_plural(problems, 'problem')}; the first: {chain['first_problem']}"
    else:
        verdict = "intact"
    return Sentence(name, f"{chain_label(name)}: {', '.join(parts)}; {verdict}.", not problems)


def verification_sentences(verification: AuditVerification) -> list[Sentence]:
    """Every chain of ``verification`` as a sentence, in the order they were checked."""
    chains = (verification.report or {}).get("chains", {})
    return [chain_sentence(name, chain) for name, chain in chains.items()]


def unsigned_heads_callout(verification: AuditVerification) -> str:
    """A warning naming the chains whose recorded heads are not all signed ("" when none)."""
    chains = (verification.report or {}).get("chains", {})
    unsigned = {name: c["unsigned"] for name, c in chains.items() if c.get("unsigned")}
    if not unsigned:
        return ""
    named = ", ".join(f"{name} ({n:,})" for name, n in unsigned.items())
    return (
        f"Unsigned chain heads: {named}. An unsigned head can be rewritten along with its chain by"
        " anyone who can write the database; set AUDIT_HMAC_KEY so that new heads are signed."
    )


def verification_headline(verification: AuditVerification) -> str:
    """The verification's verdict in one sentence, with who asked for it."""
    report = verification.report or {}
    who = report.get("requested_by")
    asked = f", asked for by {who}" if who else f" ({verification.trigger})"
    verdict = (
        "the trail is intact"
        if verification.ok
        else f"the trail is BROKEN: {_plural(verification.problems, 'problem')}"
    )
    return (
        f"Verification #{verification.pk}{asked}: {verdict}; "
        f"{verification.rows_checked:,} rows and {verification.heads_checked:,} heads checked"
        f" in {verification.duration_s:.1f} s."
    )
