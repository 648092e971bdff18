"""The webhook message of a decision: its JSON body, its outbox row and its signature.

    POST <webhook.url>
    X-Canaryd-Delivery: <canary id>:<decision seq>     the idempotency key
    X-Canaryd-Signature-256: sha256=<hex HMAC-SHA256 of the raw body with the shared secret>

The body (DESIGN §5) is compact UTF-8 JSON with keys in a fixed order, so a delivery's bytes —
and its signature — are the same on every attempt. :mod:`analyzer.webhooks` sends it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from datetime import UTC, datetime

from analyzer.model import Canary, Decision, Delivery, DeliveryState, Mode

__all__ = ["build_body", "make_delivery", "rfc3339", "sign", "verify"]


def rfc3339(at: float) -> str:
    """``at`` (epoch seconds) as RFC 3339 UTC: whole seconds, or milliseconds when fractional."""
    moment = datetime.fromtimestamp(at, tz=UTC)
    text = moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds")
    return text.removesuffix("+00:00") + "Z"


def _json_number(value: float | None) -> float | int | None:
    if value is None or not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() else value


def build_body(canary: Canary, decision: Decision, evidence_url: str) -> bytes:
    """The webhook's JSON body (DESIGN §5): compact UTF-8, keys in a fixed order."""
    payload = {
        "event": decision.action.value,
        "canary_id": canary.id,
        "name": canary.name,
        "service": canary.service,
        "stage": decision.stage_index,
        "weight": _json_number(decision.weight),
        "reason": decision.reason,
        "score": None if decision.score is None else _json_number(float(decision.score)),
        "decided_at": rfc3339(decision.decided_at),
        "evidence_url": evidence_url,
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def make_delivery(
    canary: Canary, decision: Decision, evidence_url: str, now: float
) -> Delivery | None:
    """The outbox row for a decision, or None when nothing is sent (dry-run, no webhook, or an
    action that does not notify)."""
    if canary.mode is Mode.DRY_RUN or not decision.action.notifies or not canary.webhook_url:
        return None
    return Delivery(
        delivery_id=decision.delivery_id,
        canary_id=canary.id,
        seq=decision.seq,
        event=decision.action.value,
        url=canary.webhook_url,
        body=build_body(canary, decision, evidence_url),
        state=DeliveryState.PENDING,
        next_attempt_at=now,
        created_at=now,
    )


def sign(body: bytes, secret: str) -> str:
    """``sha256=<hex HMAC-SHA256 of body>``, the X-Canaryd-Signature-256 header."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str) -> bool:
    """Whether ``header`` is the signature of ``body`` (constant-time comparison)."""
    expected = sign(body, secret).encode()
    return hmac.compare_digest(expected, header.encode("utf-8", "replace"))
