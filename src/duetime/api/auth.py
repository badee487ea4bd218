"""Bearer authentication and role checks.

Every endpoint except ``/healthz`` and ``/readyz`` needs ``Authorization: Bearer <key>``.
``viewer`` reads; ``operator`` also pauses, resumes, triggers, reruns and cancels; ``admin``
also creates, edits and deletes. A key sees only its tenant (``*`` spans all): objects of
other tenants answer 404, exactly as if they did not exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from duetime.api.problems import ApiProblem
from duetime.keys import ALL_TENANTS, ApiKey, Role

_BEARER = "bearer"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="duetime"'}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the key's id, tenant and role."""

    key_id: str
    tenant: str
    role: Role

    @classmethod
    def of(cls, key: ApiKey) -> Principal:
        """Build from an authenticated key."""
        return cls(key_id=key.id, tenant=key.tenant, role=key.role)

    @property
    def all_tenants(self) -> bool:
        """True when the key spans every tenant (tenant ``*``)."""
        return self.tenant == ALL_TENANTS

    @property
    def label(self) -> str:
        """``<tenant>:<role>``, recorded as a schedule's creator."""
        return f"{self.tenant}:{self.role.value}"

    def require(self, needed: Role) -> None:
        """Raise 403 unless this principal's role includes ``needed``."""
        if not self.role.allows(needed):
            raise ApiProblem(
                403, f"this needs the {needed.value} role; the key has {self.role.value}"
            )

    def tenant_for_create(self, requested: str | None) -> str:
        """The tenant a new object goes to: the key's own, or any for a ``*`` key."""
        if self.all_tenants:
            return requested or "default"
        if requested is not None and requested != self.tenant:
            raise ApiProblem(
                403,
                f"this key is bound to tenant {self.tenant!r}",
                errors=[{"field": "tenant", "message": f"must be {self.tenant!r} or omitted"}],
            )
        return self.tenant


def bearer_token(authorization: str | None) -> str:
    """Return the key from an ``Authorization: Bearer`` header, or raise 401."""
    if not authorization:
        raise ApiProblem(401, "missing Authorization: Bearer <key> header", headers=_CHALLENGE)
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != _BEARER or not token.strip():
        raise ApiProblem(401, "use Authorization: Bearer <key>", headers=_CHALLENGE)
    return token.strip()


def unauthorized() -> ApiProblem:
    """The 401 for a key that is unknown or revoked (no hint which)."""
    return ApiProblem(401, "invalid or revoked API key", headers=_CHALLENGE)
