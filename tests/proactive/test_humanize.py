"""Metric names and contributions in words: one humanizer for every page."""

from __future__ import annotations

import pytest

from proactive.humanize import metric_words, risk_points, risk_points_words


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("count(error.*, 7)", "errors in the last 7 days"),
        ("count(error.*, 1)", "errors in the last day"),
        ("count(support.contact, 30)", "“support.contact” events in the last 30 days"),
        ("count(*, 14)", "signals of any kind in the last 14 days"),
        ("count(billing.*, 7)", "billing events in the last 7 days"),
        ("days_since_last(session.*)", "days since the last session"),
        ("days_since_last(*)", "days since the last signal of any kind"),
        ("trend(error.*)", "trend of errors (last 7 days vs the 4 weeks before)"),
        ("days_since_signup", "days since sign-up"),
        ("risk_score", "risk score"),
        ("attribute.plan_tier", "plan tier (customer attribute)"),
        ("attribute.plan=legacy", "plan is “legacy” (customer attribute)"),
        ("attribute.api_version=v1", "api version is “v1” (customer attribute)"),
        ("value_sum(purchase.amount, 30)", "total amount of “purchase” events over the last 30 days"),
        ("value_mean(purchase.amount)", "average amount of “purchase” events in all"),
        (
            "value_sum(onboarding.step_completed.time_spent, 90)",
            "total time spent of “onboarding.step_completed” events over the last 90 days",
        ),
        ("active_days(session.*, 30)", "days with sessions in the last 30 days"),
        ("active_days(*)", "days with signals of any kind in all"),
        ("recency_ratio(purchase)", "days since the last “purchase” event, in usual gaps"),
        (
            "gap_mean(support.contact|ticket.*)",
            "usual days between days with “support.contact” events or tickets",
        ),
        ("active_trend(session.*, 30, 90)", "days with sessions: the last 30 days against the last 90"),
        (
            "bgnbd(support.contact, 14)",
            "chance of “support.contact” events within 14 days by recency and frequency (BG/NBD)",
        ),
        ("not a metric", "not a metric"),
    ],
)
def test_metrics_read_as_words(name, words):
    assert metric_words(name) == words


def test_a_contribution_is_the_points_of_risk_it_adds():
    # At 50% a +0.5 log-odds contribution: without it sigmoid(-0.5) = 37.75%, so +12 points.
    assert risk_points(0.5, 0.5) == 12
    assert risk_points_words(0.5, 0.5) == "+12 points of risk"
    assert risk_points_words(0.0125, 0.4) == "under 1 point of risk"
    assert risk_points_words(0.5, -0.5) == "−12 points of risk"
    assert risk_points_words(None, 0.3) == "—"
