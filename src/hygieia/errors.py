"""The server's one error vocabulary: every error class and every stable error code.

Services, storage and the API raise these; the API renders every one as
``{"code", "detail"}`` with its ``status`` through one function
(:func:`hygieia.api.error_handlers.error_response`). A client matches on ``code`` (the class
attribute, never a string typed elsewhere). Details are fixed text chosen by the raiser
and never contain secrets, submitted values or user data.

This module imports nothing, so the client, the storage backends and the CLI can use the
codes without pulling in the server. ``hygieia.crypto`` keeps its own exceptions: its one
opaque ``DecryptionError`` is a library error that the server never renders over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar


class HygieiaError(Exception):
    """Base of the tree; rendered as is, it is the opaque 500."""

    code: ClassVar[str] = "internal_error"
    status: int = 500
    detail: str = "internal error"
    #: Seconds after which a retry may succeed (sent as ``Retry-After``), if it may.
    retry_after: int | None = None

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.detail)
        if detail is not None:
            self.detail = detail

    @property
    def extra(self) -> dict[str, Any]:
        """Fields of the answer besides ``code`` and ``detail`` (none by default)."""
        return {}

    @property
    def headers(self) -> dict[str, str]:
        """Extra response headers that belong to this error."""
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


# --- 400 -------------------------------------------------------------------------------
class BadRequest(HygieiaError):
    code, status, detail = "bad_request", 400, "bad request"


class MalformedBody(BadRequest):
    """A JSON body the framework could not parse (raised by the API's error mapping)."""

    code, detail = "malformed_body", "request body is not valid JSON"


class ClientDisconnected(BadRequest):
    code, detail = "client_disconnected", "the client went away during the upload"


class InvalidHost(BadRequest):
    """A ``Host`` header not in ``HYGIEIA_ALLOWED_HOSTS`` (answered by api/hosts.py)."""

    code, detail = "invalid_host", "this server does not answer to that host name"


class PasskeyUnavailable(BadRequest):
    """WebAuthn needs a host name as RP ID: not an IP address (services/passkeys.py)."""

    code, detail = (
        "passkey_unavailable",
        "passkeys need this server reached by a host name (e.g. localhost), not an IP address",
    )


# --- 401 -------------------------------------------------------------------------------
class Unauthorized(HygieiaError):
    code, status, detail = "unauthorized", 401, "authentication required"


class InvalidToken(Unauthorized):
    code, detail = "invalid_token", "session token is invalid, expired or revoked"


class TokenExpired(InvalidToken):
    code, detail = "token_expired", "session token has expired"


class TokenRevoked(InvalidToken):
    code, detail = "token_revoked", "session token was revoked"


class InvalidCredentials(Unauthorized):
    code, detail = "invalid_credentials", "email or password is wrong"


class InvalidRecoveryCode(Unauthorized):
    code, detail = "invalid_recovery_code", "email or recovery code is wrong"


class FactorRequired(Unauthorized):
    """The account has a second factor and the request gave no proof of one."""

    code, detail = "factor_required", "a second factor is required"


class FactorInvalid(Unauthorized):
    """A wrong, reused or unknown second-factor code or passkey assertion."""

    code, detail = "factor_invalid", "the second factor is wrong"


class FactorExpired(Unauthorized):
    """A pending login that expired, was used up (too many attempts) or completed."""

    code, detail = "factor_expired", "the login step expired: log in again"


class LinkPasscodeWrong(Unauthorized):
    """A SMART Health Link's passcode was missing or wrong (SHL spec: 401 with
    ``remainingAttempts``, the wrong passcodes the link still accepts)."""

    code, detail = "link_passcode_wrong", "the passcode is missing or wrong"

    def __init__(self, remaining_attempts: int) -> None:
        super().__init__()
        self.remaining_attempts = remaining_attempts

    @property
    def extra(self) -> dict[str, Any]:
        return {"remainingAttempts": self.remaining_attempts}


# --- 404, 405, 408, 409 -----------------------------------------------------------------
class NotFound(HygieiaError):
    code, status, detail = "not_found", 404, "not found"


class FactorNotFound(NotFound):
    code, detail = "factor_not_found", "no such second factor"


class BlobNotFound(NotFound):
    """The blob store does not hold this blob (or one of its blocks)."""

    code, detail = "blob_not_found", "blob not found in the store"


class MethodNotAllowed(HygieiaError):
    code, status, detail = "method_not_allowed", 405, "method not allowed"


class RequestTimeout(HygieiaError):
    # Answered by the body-limit middleware itself, when a request body stalls.
    code, status, detail = "request_timeout", 408, "the request body stopped arriving"


class Conflict(HygieiaError):
    code, status, detail = "conflict", 409, "conflict"


class EmailTaken(Conflict):
    # One answer whichever unique value clashed (email or key), so that sign-up can't
    # tell an existing email from anything else (security review, finding 3).
    code, detail = "email_taken", "an account with this email or key exists"


class PasskeyTaken(Conflict):
    """A passkey whose credential id is already enrolled (on this or another account)."""

    code, detail = "passkey_taken", "this passkey is already enrolled"


class NoPendingRequest(Conflict):
    code, detail = "no_pending_request", "the contact has no pending request to approve"


class RotationPending(Conflict):
    code, detail = "rotation_pending", "a key rotation is already under way: resume it"


class NoRotation(Conflict):
    code, detail = "no_rotation", "no key rotation is under way"


class RotationIncomplete(Conflict):
    code, detail = (
        "rotation_incomplete",
        "records, emergency contacts or link labels are still sealed to the old key",
    )


class KeyConflict(Conflict):
    code, detail = "key_conflict", "the record is no longer sealed to the key named"


class RecordIdTaken(Conflict):
    # The same answer whoever holds the id (the caller or another account): an upload
    # can't be used to learn whose an id is (issue 9, finding 13).
    code, detail = "record_id_taken", "a record with this id exists"


# --- 413, 415 ---------------------------------------------------------------------------
class PayloadTooLarge(HygieiaError):
    code, status, detail = "payload_too_large", 413, "request body too large"


class RecordExceedsQuota(PayloadTooLarge):
    code, detail = "record_exceeds_quota", "the record is larger than the account's storage quota"


class LinkTooLarge(PayloadTooLarge):
    code, detail = "link_too_large", "the link's files are larger than this server allows"


class UnsupportedMediaType(HygieiaError):
    code, status, detail = "unsupported_media_type", 415, "unsupported content type"


# --- 422 -------------------------------------------------------------------------------
class ValidationFailed(HygieiaError):
    code, status, detail = "validation_error", 422, "request failed validation"


class SaltChanged(ValidationFailed):
    code, detail = "salt_changed", "a password change keeps the account's salt"


class WeakKdf(ValidationFailed):
    """KDF parameters below ``HYGIEIA_KDF_MIN_*`` for a new password."""

    code, detail = "weak_kdf", "KDF parameters are below this server's minimum"


class ShareToSelf(ValidationFailed):
    code, detail = "share_to_self", "a record can't be shared with its owner"


class TooManyGrants(ValidationFailed):
    code, detail = "too_many_grants", "the record has too many grants"


class EmergencyToSelf(ValidationFailed):
    code, detail = "emergency_to_self", "you can't be your own emergency contact"


class TooManyContacts(ValidationFailed):
    code, detail = "too_many_contacts", "the account has too many emergency contacts"


class TooManyFactors(ValidationFailed):
    code, detail = "too_many_factors", "the account has too many second factors"


class InvalidLinkFile(ValidationFailed):
    code, detail = "invalid_link_file", "a link file is not a compact JWE (dir, A256GCM)"


class InvalidKey(HygieiaError):
    code, status, detail = "invalid_key", 422, "key material is invalid"


class UnlockedSecretKey(InvalidKey):
    code, detail = "unlocked_secret_key", "secret key must be passphrase-locked"


class KeyMismatch(InvalidKey):
    code, detail = "key_mismatch", "public and private key do not belong together"


class InvalidRecord(HygieiaError):
    code, status, detail = "invalid_record", 422, "record framing is invalid"


class CidMismatch(InvalidRecord):
    code, detail = "cid_mismatch", "uploaded bytes do not have the announced CID"


class PkeskMismatch(InvalidRecord):
    code, detail = "pkesk_mismatch", "the owner's PKESK is not for the owner's encryption key"


class SizeMismatch(InvalidRecord):
    code, detail = "size_mismatch", "uploaded size or segment count differs from the announced one"


# --- 429 -------------------------------------------------------------------------------
class RateLimited(HygieiaError):
    code, status, detail = "rate_limited", 429, "too many attempts; try again later"

    def __init__(self, detail: str | None = None, *, retry_after: int = 60) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class TooManyUploads(RateLimited):
    code, detail = "too_many_uploads", "too many uploads at once for this account"


# --- 5xx -------------------------------------------------------------------------------
class ContentMissing(HygieiaError):
    code, status, detail = "content_missing", 502, "record content is missing from the store"


class StorageUnavailable(HygieiaError):
    code, status, detail = "storage_unavailable", 503, "blob store unavailable"


class ServerBusy(HygieiaError):
    code, status, detail = "server_busy", 503, "server is busy; try again shortly"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class UploadsBusy(ServerBusy):
    code, detail = "uploads_busy", "the server is taking no more uploads right now"


class QuotaExceeded(HygieiaError):
    code, status, detail = "quota_exceeded", 507, "the account's storage quota would be exceeded"


# --- any status --------------------------------------------------------------------------
class HttpError(HygieiaError):
    """An HTTP refusal from the framework that no code above describes; keeps its status."""

    code, detail = "http_error", "http error"

    def __init__(self, status: int, detail: str | None = None) -> None:
        super().__init__(detail)
        self.status = status


def from_validation_errors(
    errors: Iterable[Mapping[str, Any]], *, unparseable: HygieiaError
) -> HygieiaError:
    """Pydantic's error list as one error: ``unparseable`` if the JSON itself was bad
    (too deep included), else a :class:`ValidationFailed` naming the fields and rules.

    The submitted values are never echoed: they may be secrets.
    """
    errors = list(errors)
    if any(err.get("type") == "json_invalid" for err in errors):
        return unparseable
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        msg = str(err.get("msg", "invalid"))
        parts.append(f"{loc}: {msg}" if loc else msg)
    return ValidationFailed("; ".join(parts) or None)
