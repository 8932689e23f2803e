"""Leaving: deleting an account and everything the server holds of it (protocol §4,
"Deleting an account").

After the password proof (and the second factor, for an account that has one), one
transaction deletes every row of the account: the account, its sessions (so every
token dies), its records and their copies, grants both ways (made by it, or to it),
emergency contacts both ways, its share links and their files, its audit trail, the
throttle buckets that can be tied to it, and any row of a table that refers to the
account or to one of those rows (found from the schema's foreign keys, so a table
added later is not forgotten). Other accounts' audit trails keep their events, with
the account's email replaced where it appeared (a grant's recipient, a contact).

The blobs go after the commit: every record's and every live link file's CID gets a
``PendingPin`` row in the same transaction (backdated, so it is due at once), then is
unpinned from every store unless a remaining record uses it. A store that can't be
reached keeps its row, and reconcile (``hygieia admin reconcile`` and the server's
maintenance turns) retries it; the blocks themselves leave the embedded store at its
next garbage collection. Nothing is kept that names the account; the server's log
gets one line with counts only.

The account's email is then free: prelogin answers for it with the unknown-email
stand-ins again, and it can sign up anew.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Table,
    Text,
    cast,
    delete,
    false,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from hygieia.db.models import (
    AuditEvent,
    AuthSession,
    Base,
    PendingPin,
    Record,
    ShareLink,
    ShareLinkFile,
    Throttle,
    User,
)
from hygieia.errors import StorageUnavailable
from hygieia.services import accounts, factors, ratelimit, records
from hygieia.services.accounts import Limits
from hygieia.services.audit import UNKNOWN_CLIENT, ClientInfo
from hygieia.services.common import Clock, utcnow
from hygieia.storage import BlobStore

log = logging.getLogger(__name__)

#: What replaces the account's email in other accounts' audit details.
REDACTED = "(deleted account)"
#: Throttle scopes whose buckets are keyed on (email, client address) …
_EMAIL_SCOPES = ("login", "recover")
#: … on (account id, client address) …
_ID_SCOPES = ("password",)
#: … and on a session id.
_SESSION_SCOPES = ("key-lookup-session",)


@dataclass(frozen=True)
class Deletion:
    """What a deletion removed; counts only (the log line and the tests read them)."""

    records: int
    links: int
    unpinned: int
    #: Unpins a store could not take now: left to reconcile, as ``pending_pins`` rows.
    deferred: int


def delete_account(
    db: Session,
    store: BlobStore,
    *,
    user: User,
    session: AuthSession,
    auth_key: bytes,
    proof: factors.FactorProof | None,
    address: str,
    limits: Limits,
    client: ClientInfo = UNKNOWN_CLIENT,
    now: Clock = utcnow,
) -> Deletion:
    """Prove the password (and factor), delete the account's rows, then its pins.

    The proof is :func:`accounts.prove_sensitive`'s: one attempt in the account's
    "password" bucket (per address) for the password and the factor together, as for
    removing a factor: a stolen session can't guess faster here than there.
    """
    accounts.prove_sensitive(
        db,
        user=user,
        auth_key=auth_key,
        proof=proof,
        session=session,
        address=address,
        limits=limits,
        client=client,
        now=now,
    )
    db.commit()  # the proof succeeded (a TOTP step or backup code is spent), come what may

    user_id, email, fingerprint = user.id, user.email, user.fingerprint
    try:
        _lock_account(db, user_id)
        cids, record_count, link_count = _blobs_of(db, user_id)
        old = now() - timedelta(days=3650)  # due at once for reconcile
        pending = [PendingPin(cid=cid, created_at=old) for cid in sorted(cids)]
        db.add_all(pending)
        db.flush()
        buckets = _attributable_buckets(db, user_id=user_id, email=email, address=address)
        _delete_rows(db, user_id)
        _redact_others_audit(db, needles=(email, user_id, fingerprint))
        _delete_buckets(db, buckets)
        db.commit()
    except BaseException:
        db.rollback()
        raise

    # The account is gone whatever happens below: a blob that can't be let go now keeps
    # its pending_pins row, and reconcile retries it.
    unpinned = deferred = 0
    for p in pending:
        try:
            if records._release(db, store, p):
                unpinned += 1
        except Exception as exc:
            db.rollback()
            deferred += 1
            if not isinstance(exc, StorageUnavailable):
                log.warning("account deletion: unpin failed (%s)", type(exc).__name__)
    result = Deletion(records=record_count, links=link_count, unpinned=unpinned, deferred=deferred)
    log.info(
        "account deleted: %d record(s), %d link(s), %d blob(s) unpinned, %d left for reconcile",
        result.records,
        result.links,
        result.unpinned,
        result.deferred,
    )
    return result


def _lock_account(db: Session, user_id: str) -> None:
    """Hold the account's row for the transaction, before reading what to delete.

    On PostgreSQL, ``FOR UPDATE`` conflicts with the ``KEY SHARE`` lock that every
    insert of a row referring to the account takes: an upload, grant or link being
    committed meanwhile waits, then fails its foreign key (and releases its pin). On
    SQLite the no-op write takes the database's write lock, which does the same.
    """
    db.execute(select(User.id).where(User.id == user_id).with_for_update())
    db.execute(
        update(User)
        .where(User.id == user_id)
        .values(email=User.email)
        .execution_options(synchronize_session=False)
    )


def _blobs_of(db: Session, user_id: str) -> tuple[set[str], int, int]:
    """The CIDs to unpin (records and live link files), the record and link counts."""
    record_cids = list(db.scalars(select(Record.cid).where(Record.owner_id == user_id)))
    link_ids = list(db.scalars(select(ShareLink.id).where(ShareLink.owner_id == user_id)))
    file_cids = db.scalars(
        select(ShareLinkFile.cid)
        .join(ShareLink, ShareLink.id == ShareLinkFile.link_id)
        .where(ShareLink.owner_id == user_id)
    )
    return {*record_cids, *file_cids}, len(record_cids), len(link_ids)


def _doomed(users: Table, user_id: str) -> dict[Table, ColumnElement[bool]]:
    """For every table, which of its rows go with the account: those referring to it,
    or to a row that goes (foreign keys followed transitively, parents first)."""
    conditions: dict[Table, ColumnElement[bool]] = {users: users.c.id == user_id}
    for table in Base.metadata.sorted_tables:  # parents before children
        if table is users:
            continue
        clauses: list[ColumnElement[bool]] = []
        for fk in table.foreign_keys:
            parent = fk.column.table
            if not isinstance(parent, Table) or parent not in conditions:
                continue
            if parent is users:
                clauses.append(fk.parent == user_id)
            else:
                clauses.append(fk.parent.in_(select(fk.column).where(conditions[parent])))
        if clauses:
            conditions[table] = or_(*clauses)
    return conditions


def _delete_rows(db: Session, user_id: str) -> None:
    """Every row of the account, children before parents; then its audit trail."""
    users = User.__table__
    assert isinstance(users, Table)
    conditions = _doomed(users, user_id)
    for table in reversed(Base.metadata.sorted_tables):
        condition = conditions.get(table)
        if condition is not None:
            db.execute(delete(table).where(condition))
    # Not foreign keys, so named here: the account's own audit trail.
    db.execute(delete(AuditEvent).where(AuditEvent.user_id == user_id))


def _json_needle(value: str) -> str:
    """``value`` as it appears inside a JSON string (both databases store JSON text
    as SQLAlchemy's ``json.dumps`` wrote it), escaped for ``LIKE``."""
    inner = json.dumps(value)[1:-1]
    return inner.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _scrub(value: Any, needles: set[str]) -> tuple[Any, bool]:
    if isinstance(value, str):
        if value.casefold() in needles:
            return REDACTED, True
        return value, False
    if isinstance(value, dict):
        changed = False
        out: dict[str, Any] = {}
        for k, v in value.items():
            out[k], hit = _scrub(v, needles)
            changed |= hit
        return out, changed
    if isinstance(value, list):
        items = [_scrub(v, needles) for v in value]
        return [v for v, _ in items], any(hit for _, hit in items)
    return value, False


def _redact_others_audit(db: Session, *, needles: Sequence[str]) -> None:
    """Other accounts' events that name the account (a grant's recipient, an emergency
    contact, a link recipient string) keep their place, without the account's email."""
    folded = {n.casefold() for n in needles if n}
    text = cast(AuditEvent.detail, Text)
    match = or_(
        false(),
        *(text.like(f"%{_json_needle(n)}%", escape="\\") for n in needles if n),
    )
    for event in db.scalars(select(AuditEvent).where(match)):
        detail, changed = _scrub(event.detail, folded)
        if changed:
            event.detail = detail
    db.flush()


def _attributable_buckets(
    db: Session, *, user_id: str, email: str, address: str
) -> list[tuple[str, str]]:
    """Throttle buckets that can be tied to the account: those keyed on its email or id
    with an address it was seen at (its audit trail's and this request's), and those of
    its sessions. Buckets of an address alone are other people's too, and stay."""
    seen = set(
        db.scalars(
            select(AuditEvent.address).where(
                AuditEvent.user_id == user_id, AuditEvent.address.is_not(None)
            )
        )
    )
    keys = {ratelimit.client_key(a) for a in {*seen, address} if a}
    sessions = list(db.scalars(select(AuthSession.id).where(AuthSession.user_id == user_id)))
    policy = ratelimit.Policy(free=0, delay_seconds=0, window_seconds=0)  # only keys matter

    def of(scopes: Iterable[str], *parties: str) -> list[tuple[str, str]]:
        found = []
        for scope in scopes:
            b = ratelimit.bucket(scope, policy, *parties)
            found.append((b.scope, b.key))
        return found

    buckets: list[tuple[str, str]] = []
    for key in keys:
        buckets += of(_EMAIL_SCOPES, email, key)
        buckets += of(_ID_SCOPES, user_id, key)
    for sid in sessions:
        buckets += of(_SESSION_SCOPES, sid)
    return buckets


def _delete_buckets(db: Session, buckets: list[tuple[str, str]]) -> None:
    for i in range(0, len(buckets), 200):
        chunk = buckets[i : i + 200]
        db.execute(delete(Throttle).where(tuple_(Throttle.scope, Throttle.key).in_(chunk)))
