"""The playbook, campaign and incident builders' form state: a condition tree as plain form fields.

Admins never type JSON. Each node of the tree is a path (`r`, `r.0`, `r.0.1`) listed in the
`node` fields in document order, with `type-PATH` (all, any, not or leaf) and, for a leaf, the
picker's fields (`measure-`, `signal-`, `days-`, `since-`, `attr-`, `op-`, `value-`). `condition_from_form`
turns them back into the contract's condition JSON, which the service layer validates exactly
as the API does; `apply_op` edits the tree for the add/remove buttons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from django.db import connection
from django.http import QueryDict
from django.utils import timezone

from accounts.models import Tenant
from campaigns.conditions import ConditionError, condition_metrics, parse_condition
from proactive.features.compute import features_query
from proactive.features.metrics import Kind, Metric, MetricError, parse_metric
from proactive.humanize import metric_words
from proactive.models import SignalName

MEASURES = [
    ("count", "How many signals in the last N days"),
    ("count_since", "How many signals since a date and time"),
    ("days_since_last", "Days since the last signal"),
    ("trend", "Trend of signals (last 7 days vs the 4 weeks before)"),
    ("days_since_signup", "Days since sign-up"),
    ("risk_score", "Risk score (0 to 1)"),
    ("attribute", "A customer attribute"),
]
OPS_WORDS = [
    ("gte", "at least"),
    ("gt", "more than"),
    ("lte", "at most"),
    ("lt", "fewer than / below"),
    ("eq", "exactly / is"),
    ("neq", "not / is not"),
    ("in", "one of (comma-separated)"),
    ("not_in", "none of (comma-separated)"),
    ("exists", "is set"),
]
ATTRIBUTE_SAMPLE = 5000  # attribute keys are read from this many customers
MAX_NODES = 60


def default_leaf(tenant: Tenant) -> dict[str, Any]:
    """A starting comparison on the tenant's busiest signal family."""
    families = signal_families(tenant)
    pattern = families[0][0] if families else "*"
    return {"metric": f"count({pattern}, 7)", "op": "gte", "value": 1}


def default_incident_leaf(tenant: Tenant) -> dict[str, Any]:
    """Customers who hit the tenant's busiest error family (else busiest family) in the last hour."""
    families = [p for p, _ in signal_families(tenant)]
    pattern = next((p for p in families if p.startswith("error")), families[0] if families else "*")
    since = (timezone.now() - timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    return {"metric": f"count_since({pattern}, {since.astimezone(UTC).isoformat()})", "op": "gte", "value": 1}


# ---- form <-> tree -------------------------------------------------------------------------


def _number(text: str) -> int | float | str:
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        return text
    if not math.isfinite(value):
        return text
    return int(value) if value.is_integer() and "." not in text else value


def _attribute_value(text: str) -> Any:
    text = text.strip()
    if text in ("true", "false"):
        return text == "true"
    value = _number(text)
    return value


def _since_iso(text: str, tz: tzinfo) -> str:
    """A datetime-local field (the tenant's wall clock) as UTC ISO; bad input is kept for the
    validator to name."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return text.strip()
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(UTC).isoformat()


def _leaf_from_form(post: QueryDict, path: str, tz: tzinfo) -> dict[str, Any]:
    measure = post.get(f"measure-{path}", "count")
    signal = (post.get(f"signal-{path}") or "*").strip()
    days = (post.get(f"days-{path}") or "7").strip()
    if measure == "count":
        metric = f"count({signal}, {days})"
    elif measure == "count_since":
        metric = f"count_since({signal}, {_since_iso(post.get(f'since-{path}') or '', tz)})"
    elif measure in ("days_since_last", "trend"):
        metric = f"{measure}({signal})"
    elif measure == "attribute":
        metric = f"attribute.{(post.get(f'attr-{path}') or '').strip()}"
    else:
        metric = measure
    op = post.get(f"op-{path}", "gte")
    raw = post.get(f"value-{path}", "")
    leaf: dict[str, Any] = {"metric": metric, "op": op}
    if op == "exists":
        return leaf
    convert = _attribute_value if measure == "attribute" else _number
    if op in ("in", "not_in"):
        leaf["value"] = [convert(v) for v in raw.split(",") if v.strip()]
    else:
        leaf["value"] = convert(raw) if raw.strip() else ""
    return leaf


def condition_from_form(post: QueryDict, root: str = "r", tz: tzinfo = UTC) -> dict[str, Any] | None:
    """The condition JSON the form describes (None when it has no nodes); `since-` times are
    read in `tz` (the tenant's)."""
    paths = post.getlist("node")[:MAX_NODES]
    if root not in paths:
        return None
    children: dict[str, list[str]] = {}
    for path in paths:
        if path != root and "." in path:
            children.setdefault(path.rsplit(".", 1)[0], []).append(path)

    def build(path: str) -> dict[str, Any]:
        kind = post.get(f"type-{path}", "leaf")
        kids = children.get(path, [])
        if kind in ("all", "any"):
            return {kind: [build(k) for k in kids]}
        if kind == "not":
            return {"not": build(kids[0]) if kids else {}}
        return _leaf_from_form(post, path, tz)

    return build(root)


def _node_at(tree: dict[str, Any], path: str) -> tuple[dict[str, Any] | None, list | None, int | None]:
    """(node, parent list, index in it) for a path like r.1.0."""
    node, parent, index = tree, None, None
    for part in path.split(".")[1:]:
        key = next((k for k in ("all", "any") if k in node), None)
        if key is not None:
            parent, index = node[key], int(part)
            if index >= len(parent):
                return None, None, None
            node = parent[index]
        elif "not" in node:
            parent, index = None, None
            node = node["not"]
        else:
            return None, None, None
    return node, parent, index


ADD_OPS = [
    ("add_leaf", "+ condition"),
    ("add_any", "+ ANY-of group"),
    ("add_all", "+ ALL-of group"),
    ("add_not", "+ NOT"),
]


def apply_op(tree: dict[str, Any] | None, op: str, tenant: Tenant) -> dict[str, Any]:
    """`add_leaf|add_any|add_all|add_not:GROUP_PATH` appends to a group, `remove:PATH` drops a
    node (never a group's last child); anything else redraws the tree as it is."""
    tree = tree or {"all": [default_leaf(tenant)]}
    name, _, path = op.partition(":")
    node, parent, index = _node_at(tree, path or "r")
    if node is None:
        return tree
    group = next((k for k in ("all", "any") if k in node), None)
    if name == "add_leaf" and group:
        node[group].append(default_leaf(tenant))
    elif name in ("add_any", "add_all") and group:
        node[group].append({name.removeprefix("add_"): [default_leaf(tenant)]})
    elif name == "add_not" and group:
        node[group].append({"not": default_leaf(tenant)})
    elif name == "remove" and parent is not None and index is not None and len(parent) > 1:
        del parent[index]
    return tree


@dataclass
class LeafView:
    """What the template needs to draw one leaf's picker."""

    path: str
    measure: str
    signal: str
    days: int | str
    since: str  # datetime-local text in the tenant's time zone
    attr: str
    op: str
    value: str
    words: str


@dataclass
class NodeView:
    path: str
    kind: str  # all, any, not, leaf
    children: list[NodeView] = field(default_factory=list)
    leaf: LeafView | None = None
    removable: bool = False


def _value_text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_value_text(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _leaf_view(path: str, data: dict[str, Any], tz: tzinfo) -> LeafView:
    name = str(data.get("metric", ""))
    try:
        metric: Metric | None = parse_metric(name)
    except MetricError:
        metric = None
    kind = str(metric.kind) if metric else "count"
    signal = metric.pattern if metric and metric.pattern else "*"
    if metric is None and name.startswith("attribute."):
        kind = "attribute"  # picked in the measure list, its key not chosen yet
    elif metric is None and name.startswith("count_since("):
        kind = "count_since"  # its time not chosen yet
        signal = name.removeprefix("count_since(").split(",", 1)[0].strip() or "*"
    return LeafView(
        path=path,
        measure=kind,
        signal=signal,
        days=(metric.days if metric and metric.days else 7),
        since=(metric.since.astimezone(tz).strftime("%Y-%m-%dT%H:%M") if metric and metric.since else ""),
        attr=(metric.key if metric and metric.key else ""),
        op=str(data.get("op", "gte")),
        value=_value_text(data.get("value", "")),
        words=metric_words(name),
    )


def tree_view(
    tree: dict[str, Any] | None, path: str = "r", removable: bool = False, tz: tzinfo = UTC
) -> NodeView:
    """The tree as nested views with their paths (the form fields' names); times in `tz`."""
    tree = tree if isinstance(tree, dict) else {}
    for kind in ("all", "any"):
        if kind in tree and isinstance(tree[kind], list):
            items = tree[kind]
            return NodeView(
                path,
                kind,
                [tree_view(c, f"{path}.{i}", len(items) > 1, tz) for i, c in enumerate(items)],
                removable=removable,
            )
    if "not" in tree:
        return NodeView(path, "not", [tree_view(tree["not"], f"{path}.0", tz=tz)], removable=removable)
    return NodeView(path, "leaf", leaf=_leaf_view(path, tree, tz), removable=removable)


# ---- the tenant's catalogue -------------------------------------------------------------------


def signal_families(tenant: Tenant) -> list[tuple[str, int]]:
    """Prefix patterns (`error.*`) over the names the tenant sends, busiest first, with totals."""
    totals: dict[str, int] = {}
    for name, total in SignalName.objects.for_tenant(tenant).values_list("name", "total"):
        if "." in name:
            prefix = name.split(".", 1)[0] + ".*"
            totals[prefix] = totals.get(prefix, 0) + total
    return sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))


def signal_catalogue(tenant: Tenant) -> dict[str, Any]:
    names = list(
        SignalName.objects.for_tenant(tenant).order_by("name").values_list("name", "total", "last_seen")
    )
    families = [
        (p, metric_words(f"count({p}, 7)").removesuffix(" in the last 7 days"), t)
        for p, t in signal_families(tenant)
    ]
    return {
        "families": families,
        "names": names,
        "known": {p for p, _, _ in families} | {n for n, _, _ in names},
    }


def attribute_keys(tenant: Tenant) -> list[str]:
    """Attribute keys seen on (a sample of) the tenant's customers."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT jsonb_object_keys(a.attributes) FROM (SELECT attributes FROM proactive_customer "
            "WHERE tenant_id = %s AND jsonb_typeof(attributes) = 'object' LIMIT %s) a ORDER BY 1",
            [tenant.pk, ATTRIBUTE_SAMPLE],
        )
        return [k for (k,) in cur.fetchall()]


def unknown_names(tenant: Tenant, condition: Any, attributes: list[str]) -> list[str]:
    """Signal patterns nobody has sent and attribute keys no customer has: they match nobody."""
    try:
        metrics = condition_metrics(parse_condition(condition))
    except ConditionError:
        return []
    names = set(SignalName.objects.for_tenant(tenant).values_list("name", flat=True))
    out = []
    for m in metrics:
        if m.pattern and m.pattern != "*":
            known = any(n.startswith(m.prefix) for n in names) if m.is_prefix else m.pattern in names
            if not known:
                out.append(f"no signal “{m.pattern}” has ever been received")
        if m.kind is Kind.ATTRIBUTE and m.key not in attributes:
            out.append(f"no customer has the attribute “{m.key}”")
    return out


def _round(value: float) -> int | float:
    """Counts read 3, not 3.0; fractions keep two decimals."""
    value = round(float(value), 2)
    return int(value) if value.is_integer() else value


def distributions(tenant: Tenant, condition: Any, as_of: datetime) -> list[dict[str, Any]]:
    """Each metric of the condition across the tenant's customers now (one set-based query):
    quartiles and the 90th/99th percentile for numbers, the commonest values for attributes."""
    try:
        metrics = condition_metrics(parse_condition(condition))
    except ConditionError:
        return []
    if not metrics:
        return []
    sql, params, _ = features_query(tenant_id=tenant.pk, as_of=as_of, metrics=metrics)
    out = []
    with connection.cursor() as cur:
        for i, m in enumerate(metrics):
            if m.is_numeric:
                cur.execute(
                    f"SELECT count(*), count(f.m{i}), percentile_disc(ARRAY[0.25, 0.5, 0.75, 0.9, 0.99]) "  # noqa: S608
                    f"WITHIN GROUP (ORDER BY f.m{i}), max(f.m{i}) FROM ({sql}) f",
                    params,
                )
                total, defined, quantiles, top = cur.fetchone()
                out.append(
                    {
                        "metric": str(m),
                        "words": metric_words(str(m)),
                        "customers": total,
                        "defined": defined,
                        "quantiles": [_round(q) for q in (quantiles or [])],
                        "max": _round(top) if top is not None else None,
                    }
                )
            else:
                cur.execute(
                    f"SELECT f.m{i} #>> '{{}}', count(*) FROM ({sql}) f GROUP BY 1 ORDER BY 2 DESC LIMIT 6",  # noqa: S608
                    params,
                )
                out.append(
                    {
                        "metric": str(m),
                        "words": metric_words(str(m)),
                        "top_values": [(v if v is not None else "not set", n) for v, n in cur.fetchall()],
                    }
                )
    return out
