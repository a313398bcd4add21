from __future__ import annotations

import pytest
from django.db import connection

from campaigns.conditions import (
    MAX_DEPTH,
    ConditionError,
    columns_for,
    compile_sql,
    condition_metrics,
    parse_condition,
    render_text,
)

ONBOARDING = {
    "all": [
        {"metric": "days_since_signup", "op": "gte", "value": 3},
        {"metric": "days_since_signup", "op": "lte", "value": 21},
        {"metric": "count(onboarding.step_completed, 365)", "op": "lt", "value": 3},
    ]
}


@pytest.mark.parametrize(
    ("data", "path"),
    [
        (
            {
                "all": [
                    {"metric": "days_since_signup", "op": "gte", "value": 3},
                    {"metric": "nope", "op": "lt"},
                ]
            },
            "trigger.all[1].metric",
        ),
        ({"all": [{"metric": "count(error.*, 0)", "op": "gte", "value": 1}]}, "trigger.all[0].metric"),
        ({"any": [{"metric": "risk_score", "op": "between", "value": 1}]}, "trigger.any[0].op"),
        ({"metric": "risk_score", "op": "gte", "value": "high"}, "trigger.value"),
        ({"metric": "risk_score", "op": "gte"}, "trigger.value"),
        ({"metric": "risk_score", "op": "in", "value": [1, "x"]}, "trigger.value[1]"),
        ({"metric": "attribute.plan", "op": "eq", "value": {"a": 1}}, "trigger.value"),
        ({"all": []}, "trigger.all"),
        ({"all": [], "any": []}, "trigger"),
        ({"not": {"metric": "risk_score", "op": "gt", "value": True}}, "trigger.not.value"),
        ([1, 2], "trigger"),
        ({"metric": "risk_score", "op": "gt", "value": 1, "extra": 2}, "trigger"),
    ],
)
def test_errors_name_the_bad_part(data, path):
    with pytest.raises(ConditionError) as exc:
        parse_condition(data)
    assert exc.value.path == path
    assert str(exc.value).startswith(f"{path}: ")


def _nested(levels: int) -> dict:
    """A condition whose leaf sits `levels` groups deep, alternating all/any/not."""
    condition: dict = {"metric": "risk_score", "op": "gte", "value": 0.5}
    for level in range(levels):
        kind = ("all", "any", "not")[level % 3]
        condition = {kind: condition} if kind == "not" else {kind: [condition]}
    return condition


def test_nesting_is_limited_to_max_depth_levels_as_the_schema_says():
    parse_condition(_nested(MAX_DEPTH))
    with pytest.raises(ConditionError, match=f"nested deeper than {MAX_DEPTH} levels"):
        parse_condition(_nested(MAX_DEPTH + 1))


def test_it_renders_ranges_and_counts_as_text():
    text = render_text(parse_condition(ONBOARDING))
    assert text == "signed up 3-21 days ago AND fewer than 3 onboarding.step completed in the last 365 days"


def test_it_renders_nested_groups_and_attributes():
    cond = parse_condition(
        {
            "any": [
                {"metric": "attribute.api_version", "op": "eq", "value": "v1"},
                {
                    "not": {
                        "all": [
                            {"metric": "risk_score", "op": "gte", "value": 0.7},
                            {"metric": "attribute.plan", "op": "exists"},
                        ]
                    }
                },
            ]
        }
    )
    assert render_text(cond) == 'api_version is "v1" OR NOT (risk score at least 0.7 AND plan is set)'


def test_metrics_are_distinct_in_first_use_order():
    metrics = condition_metrics(parse_condition(ONBOARDING))
    assert [str(m) for m in metrics] == ["days_since_signup", "count(onboarding.step_completed, 365)"]


FEATURES = """
    SELECT * FROM (VALUES
        (1, 5.0::float8, 0.0::float8, '"v1"'::jsonb),
        (2, 30.0, 1.0, '"v2"'::jsonb),
        (3, 10.0, 4.0, NULL),
        (4, NULL, 2.0, '2'::jsonb),
        (5, 10.0, NULL, 'null'::jsonb)
    ) f(customer_id, m0, m1, m2)
"""


def _match(data) -> list[int]:
    cond = parse_condition(data)
    metrics = condition_metrics(cond)
    from proactive.features.metrics import parse_metric

    order = [parse_metric("days_since_signup"), parse_metric("count(a, 3)"), parse_metric("attribute.v")]
    assert set(metrics) <= set(order)
    sql, params = compile_sql(cond, columns_for(order))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT f.customer_id FROM ({FEATURES}) f WHERE {sql} ORDER BY 1", params)  # noqa: S608
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"metric": "days_since_signup", "op": "gte", "value": 10}, [2, 3, 5]),
        (
            {
                "all": [
                    {"metric": "days_since_signup", "op": "gte", "value": 3},
                    {"metric": "days_since_signup", "op": "lte", "value": 21},
                ]
            },
            [1, 3, 5],
        ),
        ({"not": {"metric": "count(a, 3)", "op": "gte", "value": 1}}, [1, 5]),
        (
            {
                "any": [
                    {"metric": "count(a, 3)", "op": "gt", "value": 3},
                    {"metric": "attribute.v", "op": "eq", "value": "v1"},
                ]
            },
            [1, 3],
        ),
        ({"metric": "attribute.v", "op": "in", "value": ["v2", 2]}, [2, 4]),
        ({"metric": "attribute.v", "op": "not_in", "value": ["v2"]}, [1, 4]),
        ({"metric": "attribute.v", "op": "exists"}, [1, 2, 4]),
        ({"metric": "attribute.v", "op": "exists", "value": False}, [3, 5]),
        ({"metric": "attribute.v", "op": "gte", "value": 2}, [4]),
        ({"metric": "attribute.v", "op": "neq", "value": "v1"}, [2, 4]),
        ({"metric": "days_since_signup", "op": "in", "value": [5, 30]}, [1, 2]),
        ({"metric": "days_since_signup", "op": "exists", "value": False}, [4]),
    ],
)
def test_compiled_sql_selects_the_matching_rows(data, expected):
    assert _match(data) == expected
