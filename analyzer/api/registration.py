"""From a validated registration request to a :class:`~analyzer.tick.fleet.Registration`.

Everything that can be checked before a canary exists is checked here, each failure naming
its field: the metadata's size; the config (stored by name, or inline: refused when the policy
says so, bounded in metrics and kill rules, kept by content hash only); declared variables;
every query template rendered for both sides (so label values are escaped and unknown variables
caught now, not at the first tick); the webhook host; for the scrape source the targets and
query shapes.
"""

from __future__ import annotations

from typing import Any

from analyzer.api.policy import ApiPolicy, check_config_size, check_metadata_size
from analyzer.api.schemas import RegisterRequest, SideIn
from analyzer.configs.catalog import Catalog
from analyzer.configs.judgeconfig import JudgeConfig, parse_config
from analyzer.configs.overlap import overlap_warnings
from analyzer.errors import InvalidInput, NotFound
from analyzer.model import Mode, Side, Stage
from analyzer.sources.promql.render import render, selector
from analyzer.sources.scrape import check_side_targets, check_supported
from analyzer.tick.fleet import Registration
from analyzer.webhooks.policy import check_webhook_url

__all__ = ["build_registration", "registration_warnings"]


async def _config(
    spec: RegisterRequest, catalog: Catalog, policy: ApiPolicy
) -> tuple[str, str, JudgeConfig]:
    """(hash, the name the canary shows, config). An inline config is kept by hash only and
    shown as ``inline:<its name>``: a name's current version changes by PUT alone."""
    if spec.config_inline is not None:
        if not policy.allow_inline_configs:
            msg = "inline configs are refused here (CANARYD_ALLOW_INLINE_CONFIGS=false); use config"
            raise InvalidInput("config_inline", msg)
        check_config_size(spec.config_inline, policy, prefix="config_inline.")
        try:
            config = parse_config(spec.config_inline, source="config_inline", strict=True)
        except InvalidInput as exc:
            first = exc.message.splitlines()[0]
            raise InvalidInput(f"config_inline.{first.split(':', 1)[0]}", exc.message) from None
        version = await catalog.put_inline(config)
        return version.hash, f"inline:{config.name}", config
    name = spec.config or ""
    try:
        digest, config = await catalog.current(name)
    except NotFound:
        raise InvalidInput("config", f"no stored config named {name!r}") from None
    return digest, name, config


def _check_queries(
    spec: RegisterRequest, config: JudgeConfig, variables: dict[str, str], scrape: bool
) -> None:
    for side_name, side in (("baseline", spec.baseline), ("canary", spec.canary)):
        for i, metric in enumerate(config.metrics):
            for role, template in metric.templates().items():
                where = f"{side_name}: metrics.{i}.query" + ("" if role == "query" else f".{role}")
                query = render(
                    template,
                    labels=side.labels,
                    step_s=config.step,
                    window_s=config.analysis_interval,
                    variables=variables,
                    where=where,
                )
                if scrape:
                    check_supported(query, where=where)


def _side(side: SideIn, name: str, scrape: bool, policy: ApiPolicy) -> Side:
    if scrape and not side.targets:
        raise InvalidInput(f"{name}.targets", "the scrape source needs the side's /metrics URLs")
    if scrape:  # checked again before every scrape and at connect time
        check_side_targets(side.targets, policy.scrape_allowed_hosts, side=name)
    try:  # the matchers the queries will get: empty values and bad names named per side
        selector(side.labels)
    except InvalidInput as exc:
        raise InvalidInput(f"{name}.{exc.field}", exc.message) from None
    return Side(labels=dict(side.labels), targets=tuple(side.targets))


async def build_registration(
    spec: RegisterRequest,
    body: dict[str, Any],
    catalog: Catalog,
    allowed_hosts: list[str],
    scrape: bool,
    *,
    policy: ApiPolicy,
) -> Registration:
    """Validate everything about a registration; InvalidInput names the field."""
    check_metadata_size(spec.metadata, policy)
    digest, shown_name, config = await _config(spec, catalog, policy)
    undeclared = sorted(set(spec.variables) - set(config.variables))
    if undeclared:
        raise InvalidInput(f"variables.{undeclared[0]}", "not declared by the config's variables")
    variables = {**config.variables, **spec.variables}
    baseline = _side(spec.baseline, "baseline", scrape, policy)
    canary = _side(spec.canary, "canary", scrape, policy)
    _check_queries(spec, config, variables, scrape)
    url = spec.webhook.url if spec.webhook is not None else None
    if url is not None and spec.mode is Mode.LIVE:
        check_webhook_url(url, allowed_hosts)
    stages = tuple(
        Stage(weight=s.weight, duration_s=s.duration, min_duration_s=s.min_duration)
        for s in spec.stages
    )
    return Registration(
        name=spec.name,
        service=spec.service,
        config_hash=digest,
        config_name=shown_name,
        baseline=baseline,
        canary=canary,
        stages=stages,
        webhook_url=url,
        mode=spec.mode,
        metadata=dict(spec.metadata),
        variables=dict(spec.variables),
        body=body,
    )


def registration_warnings(reg: Registration, catalog: Catalog) -> list[str]:
    """What the registration's answer warns about, each naming its metric: query ranges longer
    than the config's step (overlapping samples) with this canary's variable values. The
    config is in memory: :func:`build_registration` just loaded or stored it."""
    return overlap_warnings(catalog.cached(reg.config_hash), reg.variables)
