"""Second factors in the services, on both databases, with an injected clock: TOTP
window and single use (also under a race), pending-login expiry and attempt cap, the
shared throttle, recovery removing factors."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from hygieia import crypto
from hygieia.db.engine import make_engine, migrate, session_factory
from hygieia.db.models import BackupCode, User, UserFactor
from hygieia.errors import (
    FactorExpired,
    FactorInvalid,
    FactorRequired,
    InvalidCredentials,
    RateLimited,
)
from hygieia.services import accounts, factors
from hygieia.services.accounts import IssuedSession, Limits, PendingLogin
from hygieia.services.factors import FactorProof
from hygieia.services.hashing import HashLimiter
from hygieia.services.ratelimit import Policy

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)  # a step boundary (divisible by 30 s)
EMAIL = "fac@example.org"
AUTH_KEY = b"k" * 32
ADDRESS = "192.0.2.7"
LIMITS = Limits(
    session_ttl_seconds=3600,
    login=Policy(free=20, delay_seconds=30, window_seconds=900),
    login_address=Policy(free=100, delay_seconds=30, window_seconds=900),
    signup=Policy(free=100, delay_seconds=30, window_seconds=3600),
    key_lookup=Policy(free=100, delay_seconds=30, window_seconds=3600),
    hashing=HashLimiter(slots=2, queue=8),
)


def at(seconds: float) -> Callable[[], datetime]:
    return lambda: T0 + timedelta(seconds=seconds)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    migrate(engine)
    with session_factory(engine)() as db:
        db.add(
            User(
                email=EMAIL,
                created_at=T0,
                kdf={"alg": "argon2id", "v": 19, "m": 8192, "t": 1, "p": 1},
                salt=b"s" * 16,
                auth_hash=crypto.hash_secret(AUTH_KEY),
                recovery_salt=b"r" * 16,
                recovery_hash=crypto.hash_secret(b"r" * 32),
                public_key="(not parsed here)",
                locked_secret_key="(not parsed here)",
                fingerprint="F" * 40,
                encryption_key_id="E" * 16,
                wrapped_vault_key=b"w" * 61,
                recovery_wrapped_vault_key=b"w" * 61,
            )
        )
        db.commit()
    yield engine
    engine.dispose()


def _user(db: Session) -> User:
    user = db.scalar(select(User).where(User.email == EMAIL))
    assert user is not None
    return user


def _enrol(engine: Engine) -> tuple[pyotp.TOTP, list[str]]:
    with session_factory(engine)() as db:
        started = factors.start_totp(db, user=_user(db), label="Phone", now=at(0))
        totp = pyotp.TOTP(started.secret)
        done = factors.confirm_totp(
            db, user=_user(db), factor_id=started.factor_id, code=totp.at(T0), now=at(0)
        )
        assert done.backup_codes is not None
        return totp, done.backup_codes


def _pending(db: Session, now: Callable[[], datetime]) -> PendingLogin:
    answer = accounts.login(
        db, email=EMAIL, auth_key=AUTH_KEY, address=ADDRESS, limits=LIMITS, now=now
    )
    assert isinstance(answer, PendingLogin)
    return answer


def _finish(db: Session, token: str, proof: FactorProof, now: Callable[[], datetime]) -> None:
    issued = accounts.login_factor(
        db, pending_token=token, proof=proof, address=ADDRESS, limits=LIMITS, now=now
    )
    assert isinstance(issued, IssuedSession)


def test_totp_window_and_single_use(engine: Engine) -> None:
    totp, _ = _enrol(engine)
    with session_factory(engine)() as db:
        user = _user(db)

        def check(code: str, seconds: float) -> bool:
            try:
                proof = FactorProof("totp", code)
                factors.verify_proof(db, user=user, proof=proof, now=at(seconds))
            except FactorInvalid:
                db.rollback()
                return False
            db.commit()
            return True

        # Step 0 was used by the confirmation; a code two steps back is outside the window.
        assert not check(totp.at(T0), 30)
        assert not check(totp.at(T0 + timedelta(seconds=60)), 150)  # step 2 at step 5
        assert check(totp.at(T0 + timedelta(seconds=60)), 90)  # step 2 at step 3: ok
        assert not check(totp.at(T0 + timedelta(seconds=60)), 90)  # once only
        assert not check(totp.at(T0 + timedelta(seconds=30)), 90)  # and nothing older
        assert check(totp.at(T0 + timedelta(seconds=120)), 90)  # step 4 at step 3: ok
        assert not check("12345", 90) and not check("abcdef", 90)
        with pytest.raises(FactorRequired):
            factors.verify_proof(db, user=user, proof=None, now=at(90))


def test_one_code_two_racing_requests(engine: Engine) -> None:
    totp, _ = _enrol(engine)
    code = totp.at(T0 + timedelta(seconds=30))
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def attempt() -> None:
        with session_factory(engine)() as db:
            barrier.wait()
            try:
                factors.verify_proof(
                    db, user=_user(db), proof=FactorProof("totp", code), now=at(30)
                )
                db.commit()
                results.append(True)
            except FactorInvalid:
                results.append(False)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]


def test_pending_login_expires_and_is_capped(engine: Engine) -> None:
    totp, codes = _enrol(engine)
    with session_factory(engine)() as db:
        pending = _pending(db, at(30))
        assert pending.methods == ["totp", "backup_code"]
        assert pending.expires_at == T0 + timedelta(seconds=30) + accounts.FACTOR_TOKEN_TTL
        with pytest.raises(FactorExpired):  # five minutes later
            _finish(db, pending.pending_token, FactorProof("backup_code", codes[0]), at(331))
        pending = _pending(db, at(400))
        for _ in range(accounts.MAX_FACTOR_ATTEMPTS):
            with pytest.raises(FactorInvalid):
                _finish(db, pending.pending_token, FactorProof("totp", "000000"), at(401))
        with pytest.raises(FactorExpired):
            _finish(db, pending.pending_token, FactorProof("backup_code", codes[0]), at(402))
        pending = _pending(db, at(420))
        _finish(db, pending.pending_token, FactorProof("totp", totp.at(at(420)())), at(420))
        with pytest.raises(FactorExpired):  # used
            _finish(db, pending.pending_token, FactorProof("backup_code", codes[0]), at(421))


def test_wrong_factors_and_passwords_share_one_bucket(engine: Engine) -> None:
    strict = replace(LIMITS, login=Policy(free=3, delay_seconds=30, window_seconds=900))
    _enrol(engine)
    with session_factory(engine)() as db:
        answer = accounts.login(
            db, email=EMAIL, auth_key=AUTH_KEY, address=ADDRESS, limits=strict, now=at(10)
        )
        assert isinstance(answer, PendingLogin)  # 1 (pays for the first factor try)
        for n in range(2):  # the first try was paid for; the second is 2
            with pytest.raises(FactorInvalid):
                accounts.login_factor(
                    db,
                    pending_token=answer.pending_token,
                    proof=FactorProof("totp", "000000"),
                    address=ADDRESS,
                    limits=strict,
                    now=at(11 + n),
                )
        with pytest.raises(InvalidCredentials):  # 3: a wrong password
            accounts.login(
                db, email=EMAIL, auth_key=b"x" * 32, address=ADDRESS, limits=strict, now=at(13)
            )
        with pytest.raises(RateLimited) as limited:  # even the right password waits 30 s
            accounts.login(
                db, email=EMAIL, auth_key=AUTH_KEY, address=ADDRESS, limits=strict, now=at(14)
            )
        assert limited.value.retry_after == 29
        # Another address is not slowed down.
        other = accounts.login(
            db, email=EMAIL, auth_key=AUTH_KEY, address="198.51.100.1", limits=strict, now=at(14)
        )
        assert isinstance(other, PendingLogin)


def test_recovery_removes_factors(engine: Engine) -> None:
    _enrol(engine)
    with session_factory(engine)() as db:
        user = _user(db)
        assert factors.remove_all(db, user_id=user.id, address=ADDRESS, now=at(5))
        db.commit()
        assert db.scalar(select(func.count()).select_from(UserFactor)) == 0
        assert db.scalar(select(func.count()).select_from(BackupCode)) == 0
        assert factors.methods_for(db, user.id) == []
        assert not factors.remove_all(db, user_id=user.id, address=ADDRESS, now=at(6))
        issued = accounts.login(
            db, email=EMAIL, auth_key=AUTH_KEY, address=ADDRESS, limits=LIMITS, now=at(7)
        )
        assert isinstance(issued, IssuedSession)
