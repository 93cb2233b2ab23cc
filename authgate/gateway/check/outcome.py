"""What every adapter makes of a decision: the identity headers of an allow, the RFC
6750 challenge and error body of a deny, and the one record of it (metric + log)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from prometheus_client import Counter, Histogram

from authgate.gateway import metrics as metrics_mod
from authgate.gateway import policy as policy_mod
from authgate.gateway.check import engine as engine_mod
from authgate.gateway.check import original as original_mod
from authgate.identity import logs

log = logs.get("authgate.check")


_LIST_PARAMS = ("scopes", "any_scopes", "roles")


def route_requirement(values: Mapping[str, str]) -> policy_mod.Requirement | None:
    """The per-route requirement a proxy's configuration names -- the auth URL's query
    or Envoy's ``context_extensions``: ``scopes``, ``any_scopes``, ``roles``
    (comma-separated) and ``org``. It adds to the policy's, never relaxes it."""
    lists = {name: tuple(v for v in values.get(name, "").split(",") if v) for name in _LIST_PARAMS}
    org = values.get("org") or None
    if not any(lists.values()) and org is None:
        return None
    return policy_mod.Requirement(
        access="authenticated",
        scopes=lists["scopes"],
        any_scopes=lists["any_scopes"],
        roles=tuple(policy_mod.RoleGrant(name=name, org=org) for name in lists["roles"]),
        org=org,
        rule_source="route",
        matched=True,
    )


def identity_headers(
    names: tuple[str, ...], identity: engine_mod.Identity | None
) -> list[tuple[str, str]]:
    """All of them, empty when unknown, so that a client's own copy is always
    overwritten upstream. ``names`` follows ``settings.IDENTITY_FIELDS``."""
    if identity is None:
        return [(name, "") for name in names]
    values = (
        identity.subject,
        identity.email,
        identity.org,
        ",".join(identity.roles),
        " ".join(identity.scopes),
        identity.client_id,
    )
    return list(zip(names, values, strict=True))


def deny_body(decision: engine_mod.Decision) -> str:
    description = (
        "authentication is required"
        if decision.status == 401
        else "the credentials do not allow this request"
    )
    error = decision.error or ("unauthorized" if decision.status == 401 else "forbidden")
    return json.dumps({"error": error, "error_description": description})


def challenge(decision: engine_mod.Decision) -> str:
    value = 'Bearer realm="authgate"'
    if decision.error:
        value += f', error="{decision.error}"'
    return value


class Books:
    """The one record of every decision: a metric by adapter, result and reason, the
    latency, and for a deny a log line with the full reason -- which goes nowhere else,
    never to the caller. The metric children are looked up once per label set:
    ``labels()`` is most of a record's cost, and checks come by the thousand."""

    # Adapters x results x reason kinds is a few dozen; the bound is a backstop.
    _MAX_CHILDREN = 256

    def __init__(self, metrics: metrics_mod.Metrics) -> None:
        self._metrics = metrics
        self._children: dict[tuple[str, bool, str], tuple[Counter, Histogram]] = {}

    def record(
        self,
        adapter: str,
        original: original_mod.Original,
        decision: engine_mod.Decision,
        elapsed: float,
    ) -> None:
        kind = decision.reason.partition(":")[0]
        key = (adapter, decision.allow, kind)
        children = self._children.get(key)
        if children is None:
            metrics = self._metrics
            children = (
                metrics.checks.labels(adapter, "allow" if decision.allow else "deny", kind),
                metrics.check_latency.labels(adapter),
            )
            if len(self._children) < self._MAX_CHILDREN:
                self._children[key] = children
        children[0].inc()
        children[1].observe(elapsed)
        if not decision.allow:
            log.info(
                "check_denied",
                adapter=adapter,
                reason=decision.reason,
                method=original.method,
                host=original.host,
                path=original.path,
                subject=decision.identity.subject if decision.identity else None,
            )


def unreadable(adapter: str, problem: str) -> engine_mod.Decision:
    log.warning("check_unreadable", adapter=adapter, problem=problem)
    return engine_mod.Decision(False, 403, "unreadable", None, None)
