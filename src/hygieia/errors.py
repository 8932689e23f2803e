"""One error tree with stable, machine-readable codes.

Services raise these; the API renders every one as ``{"code", "detail"}`` with its
``status``. Messages never contain secrets or user data: callers pass fixed text.
"""

from __future__ import annotations


class HygieiaError(Exception):
    code = "internal_error"
    status = 500
    detail = "internal error"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.detail)
        if detail is not None:
            self.detail = detail


class BadRequest(HygieiaError):
    code, status, detail = "bad_request", 400, "bad request"


class ValidationFailed(HygieiaError):
    code, status, detail = "validation_error", 422, "request failed validation"


class InvalidKey(HygieiaError):
    code, status, detail = "invalid_key", 422, "key material is invalid"


class UnlockedSecretKey(HygieiaError):
    code, status, detail = "unlocked_secret_key", 422, "secret key must be passphrase-locked"


class KeyMismatch(HygieiaError):
    code, status, detail = "key_mismatch", 422, "public and private key do not belong together"


class InvalidRecord(HygieiaError):
    code, status, detail = "invalid_record", 422, "record framing is invalid"


class Unauthorized(HygieiaError):
    code, status, detail = "unauthorized", 401, "authentication required"


class InvalidToken(Unauthorized):
    code, detail = "invalid_token", "session token is invalid, expired or revoked"


class InvalidCredentials(Unauthorized):
    code, detail = "invalid_credentials", "email or password is wrong"


class InvalidRecoveryCode(Unauthorized):
    code, detail = "invalid_recovery_code", "email or recovery code is wrong"


class Forbidden(HygieiaError):
    code, status, detail = "forbidden", 403, "not allowed"


class NotFound(HygieiaError):
    code, status, detail = "not_found", 404, "not found"


class Conflict(HygieiaError):
    code, status, detail = "conflict", 409, "conflict"


class EmailTaken(Conflict):
    # One answer whichever unique value clashed (email or key), so that sign-up can't
    # tell an existing email from anything else (security review, finding 3).
    code, detail = "email_taken", "an account with this email or key exists"


class SaltChanged(ValidationFailed):
    code, detail = "salt_changed", "a password change keeps the account's salt"


class PayloadTooLarge(HygieiaError):
    code, status, detail = "payload_too_large", 413, "request body too large"


class UnsupportedMediaType(HygieiaError):
    code, status, detail = "unsupported_media_type", 415, "unsupported content type"


class RateLimited(HygieiaError):
    code, status, detail = "rate_limited", 429, "too many attempts; try again later"

    def __init__(self, detail: str | None = None, *, retry_after: int = 60) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class ServerBusy(HygieiaError):
    code, status, detail = "server_busy", 503, "server is busy; try again shortly"

    def __init__(self, detail: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class StorageUnavailable(HygieiaError):
    code, status, detail = "storage_unavailable", 503, "blob store unavailable"


class ContentMissing(HygieiaError):
    code, status, detail = "content_missing", 502, "record content is missing from the store"


class TokenExpired(InvalidToken):
    code, detail = "token_expired", "session token has expired"


class TokenRevoked(InvalidToken):
    code, detail = "token_revoked", "session token was revoked"


class MalformedBody(BadRequest):
    code, detail = "malformed_body", "request body is not valid JSON"
