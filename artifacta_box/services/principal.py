"""Who is calling: the authenticated API key and its tenant. A leaf module (it imports only the
plan type), so every service can take a Principal without importing another service."""

from __future__ import annotations

from dataclasses import dataclass

from artifacta_box.config import Plan


@dataclass(frozen=True)
class Principal:
    """The authenticated key and its tenant, as read at request start."""

    tenant_id: int
    tenant_name: str
    plan: Plan
    key_id: str
    key_last4: str
    requests_month: str
    requests_count: int
    # UsageMeter.flushed_for(tenant_id) when the row was read (the row may be cached a while)
    requests_flushed_then: int = 0

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"key:{self.key_id}"
