"""The pure half of webhooks: body, delivery rows, signatures and the URL policy."""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import replace

import pytest

from analyzer.errors import InvalidInput
from analyzer.model import Action, Canary, Decision, DeliveryState, Mode, Phase, Side, Stage
from analyzer.webhooks.message import build_body, make_delivery, rfc3339, sign, verify
from analyzer.webhooks.policy import check_webhook_url

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
EVIDENCE = "http://canaryd.test/api/v1/canaries/c1"

CANARY = Canary(
    id="c1",
    name="checkout-2.3.1",
    service="checkout",
    config_name="http-golden-signals",
    config_hash="ab" * 32,
    baseline=Side(labels={"deployment": "checkout-baseline"}),
    canary=Side(labels={"deployment": "checkout-canary"}),
    stages=(Stage(weight=5.0, duration_s=600.0), Stage(weight=25.0, duration_s=600.0)),
    webhook_url="https://deploy.internal/hooks/canary",
    created_at=T0,
    stage_started_at=T0,
)

DECISION = Decision(
    canary_id="c1",
    seq=3,
    action=Action.ROLLBACK,
    reason="error_rate: canary/baseline ≥ 3.1 (e=412 ≥ 100)",
    score=0.0,
    stage_index=1,
    weight=25.0,
    decided_at=T0 + 90.25,
    phase_after=Phase.ROLLED_BACK,
)


class TestBuildBody:
    """build_body: the JSON document of DESIGN §5."""

    def test_fields_in_order(self) -> None:
        """The body has exactly the contract's fields, in the contract's order."""
        body = json.loads(build_body(CANARY, DECISION, EVIDENCE))
        assert list(body) == [
            "event",
            "canary_id",
            "name",
            "service",
            "stage",
            "weight",
            "reason",
            "score",
            "decided_at",
            "evidence_url",
        ]
        assert body == {
            "event": "rollback",
            "canary_id": "c1",
            "name": "checkout-2.3.1",
            "service": "checkout",
            "stage": 1,
            "weight": 25,
            "reason": "error_rate: canary/baseline ≥ 3.1 (e=412 ≥ 100)",
            "score": 0,
            "decided_at": "2026-01-01T00:01:30.250Z",
            "evidence_url": EVIDENCE,
        }

    def test_compact_utf8_and_deterministic(self) -> None:
        """The body is compact UTF-8 JSON and the same bytes every time."""
        body = build_body(CANARY, DECISION, EVIDENCE)
        assert body == build_body(CANARY, DECISION, EVIDENCE)
        assert b", " not in body
        assert b": " not in body.replace(b"error_rate: ", b"")
        assert "≥".encode() in body

    def test_missing_and_non_finite_scores_are_null(self) -> None:
        """A score of None or NaN is written as null, never as invalid JSON."""
        for score in (None, float("nan")):
            decision = replace(DECISION, score=score)
            assert json.loads(build_body(CANARY, decision, EVIDENCE))["score"] is None

    def test_rfc3339(self) -> None:
        """Timestamps are UTC with a Z, milliseconds only when fractional."""
        assert rfc3339(T0) == "2026-01-01T00:00:00Z"
        assert rfc3339(T0 + 0.5) == "2026-01-01T00:00:00.500Z"


class TestMakeDelivery:
    """make_delivery: the outbox row of a decision, or None."""

    def test_notifying_decision_of_live_canary(self) -> None:
        """A rollback of a live canary becomes a pending row keyed by <canary>:<seq>."""
        delivery = make_delivery(CANARY, DECISION, EVIDENCE, now=T0 + 91)
        assert delivery is not None
        assert delivery.delivery_id == "c1:3"
        assert (delivery.canary_id, delivery.seq, delivery.event) == ("c1", 3, "rollback")
        assert delivery.url == CANARY.webhook_url
        assert delivery.body == build_body(CANARY, DECISION, EVIDENCE)
        assert delivery.state is DeliveryState.PENDING
        assert (delivery.attempts, delivery.next_attempt_at, delivery.created_at) == (
            0,
            T0 + 91,
            T0 + 91,
        )

    @pytest.mark.parametrize("action", [Action.PAUSE, Action.RESUME, Action.ABORT])
    def test_silent_actions(self, action: Action) -> None:
        """Pause, resume and abort notify nobody."""
        decision = replace(DECISION, action=action)
        assert make_delivery(CANARY, decision, EVIDENCE, now=T0) is None

    def test_dry_run(self) -> None:
        """A dry-run canary's decisions are never delivered."""
        dry = replace(CANARY, mode=Mode.DRY_RUN)
        assert make_delivery(dry, DECISION, EVIDENCE, now=T0) is None

    def test_no_webhook(self) -> None:
        """A canary without a webhook URL gets no row."""
        assert make_delivery(replace(CANARY, webhook_url=None), DECISION, EVIDENCE, now=T0) is None


class TestSignature:
    """sign and verify: HMAC-SHA256 over the raw body."""

    def test_known_vector(self) -> None:
        """sign matches RFC 4231 test case 2 with the sha256= prefix."""
        digest = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        assert sign(b"what do ya want for nothing?", "Jefe") == f"sha256={digest}"

    def test_verify(self) -> None:
        """verify accepts the right signature only."""
        body = build_body(CANARY, DECISION, EVIDENCE)
        good = sign(body, "s3cret")
        assert verify(body, "s3cret", good)
        assert not verify(body, "other", good)
        assert not verify(body + b" ", "s3cret", good)
        assert not verify(body, "s3cret", good.removeprefix("sha256="))
        assert not verify(body, "s3cret", "sha256=ünïcode")


ALLOWED = ("deploy.internal", "hooks.example.com:8443", "[2001:db8::1]", "10.1.2.3")


class TestCheckWebhookUrl:
    """check_webhook_url: scheme, allow-list, internal addresses, userinfo; no DNS."""

    @pytest.mark.parametrize(
        "url",
        [
            "https://deploy.internal/hooks/canary",
            "http://deploy.internal:8080/x",
            "https://DEPLOY.internal./hooks",
            "https://hooks.example.com:8443/in",
            "https://[2001:db8::1]/hook",
            "http://[2001:db8:0::1]:81/hook",
            "http://10.1.2.3/hook",
        ],
    )
    def test_allowed(self, url: str) -> None:
        """Hosts in the allow-list pass, on any port unless the entry names one."""
        check_webhook_url(url, ALLOWED)

    @pytest.mark.parametrize(
        ("url", "allowed", "why"),
        [
            ("https://evil.example/hook", ALLOWED, "not in the allowed"),
            ("https://deploy.internal.evil.example/", ALLOWED, "not in the allowed"),
            ("https://hooks.example.com/in", ALLOWED, "not in the allowed"),
            ("https://deploy.internal/", (), "not in the allowed"),
            ("http://169.254.10.1/", ("*",), "link-local"),
            ("http://169.254.169.254/latest/meta-data/", ("169.254.169.254",), "metadata"),
            ("http://2852039166/latest/meta-data/", ("*",), "metadata"),
            ("http://0xa9.0xfe.0xa9.0xfe/", ("*",), "metadata"),
            ("http://[::ffff:169.254.169.254]/", ("*",), "metadata"),
            ("http://[fd00:ec2::254]/", ("*",), "metadata"),
            ("http://[fe80::1]/", ("*",), "link-local"),
            ("http://[fe80::1%25eth0]/", ("*",), "link-local"),
            ("http://metadata.google.internal/computeMetadata/v1/", ("*",), "metadata"),
            ("http://metadata./", ("metadata",), "metadata"),
            ("https://user:pw@deploy.internal/", ALLOWED, "user info"),
            ("https://deploy.internal@evil.example/", ALLOWED, "user info"),
            ("ftp://deploy.internal/hook", ALLOWED, "scheme"),
            ("deploy.internal/hook", ALLOWED, "scheme"),
            ("https:///nohost", ("*",), "no host"),
            ("https://deploy.internal:99999/", ALLOWED, "not a valid URL"),
            ("https://169.254.169.254\\.deploy.internal/", ("*",), "'\\\\'"),
            ("https://deploy.internal/\nHost: x", ALLOWED, "whitespace"),
            ("http://10.1.2.3%25.evil.example/hook", ALLOWED, "must not contain '%'"),
            ("http://[2001:db8::1%eth0]/hook", ALLOWED, "zone id"),
        ],
    )
    def test_refused(self, url: str, allowed: Collection[str], why: str) -> None:
        """Everything outside the policy raises InvalidInput on webhook.url."""
        with pytest.raises(InvalidInput, match=why) as caught:
            check_webhook_url(url, allowed)
        assert caught.value.field == "webhook.url"

    def test_wildcard_allows_other_hosts(self) -> None:
        """'*' allows any host that is not internal."""
        check_webhook_url("https://anything.example:9/x", ["*"])

    def test_port_entry_only_matches_that_port(self) -> None:
        """An entry host:port does not allow the host's other ports, default ports included."""
        check_webhook_url("https://a.example/x", ["a.example:443"])
        with pytest.raises(InvalidInput):
            check_webhook_url("http://a.example/x", ["a.example:443"])
        with pytest.raises(InvalidInput):
            check_webhook_url("https://a.example/x", ["a.example:nope"])
