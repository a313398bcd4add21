"""The incident detector on generated data: a planted outage is found early, with the right
customers and segment; weeks of normal data raise (almost) nothing."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.services import api_key_create
from campaigns.conditions import parse_condition
from campaigns.firing import playbooks_evaluate
from campaigns.incidents import incidents_notify
from campaigns.models import Incident, Outreach
from campaigns.monitoring import detect, monitor_run
from campaigns.playbooks import matching_sql
from proactive.models import PipelineRun
from tests.campaigns.monitoring_world import Outage, build_world
from tests.factories import MembershipFactory, PlaybookFactory, TenantFactory
from tests.webhooks.helpers import deliveries
from tests.webhooks.test_emission import subscribe

END = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday
MID = datetime(2026, 3, 3, 15, 0, tzinfo=UTC)  # a Tuesday afternoon


def _affected_ids(tenant, incident, as_of) -> set[str]:
    sql, params = matching_sql(
        tenant=tenant, as_of=as_of, condition=parse_condition(incident.affected, "affected")
    )
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT c.external_id FROM ({sql}) m JOIN proactive_customer c ON c.id = m.customer_id",  # noqa: S608
            params,
        )
        return {r[0] for r in cur.fetchall()}


@pytest.mark.django_db
@pytest.mark.parametrize("seed", [11, 12])
def test_a_planted_outage_is_detected_within_two_hours_with_its_customers_and_segment(seed):
    tenant = TenantFactory()
    start = END - timedelta(days=3) + timedelta(hours=9, minutes=20)  # a Friday morning
    outage = Outage("error.sync_failed", "integration", "salesforce", start, hours=5, share=0.35)
    world = build_world(tenant=tenant, seed=seed, weeks=6, end=END, outage=outage)
    detected = None
    as_of = start - timedelta(hours=1)
    while as_of <= start + timedelta(hours=2):
        result = monitor_run(tenant=tenant, as_of=as_of)
        if result["suspected"]:
            detected = as_of
            break
        as_of += timedelta(minutes=5)
    assert detected is not None and detected >= start
    incident = Incident.objects.for_tenant(tenant).get()
    assert incident.status == Incident.Status.SUSPECTED
    assert incident.detection["segment"] == {"integration": "salesforce"}
    assert incident.detection["signal"] == "error.sync_failed"
    assert "integration = salesforce" in incident.component
    affected = _affected_ids(tenant, incident, detected)
    planted = world.planted_between(start, detected)
    precision = len(affected & planted) / len(affected)
    recall = len(affected & planted) / len(planted)
    print(f"seed {seed}: detected after {detected - start}, precision {precision:.3f} recall {recall:.3f}")
    assert precision >= 0.9 and recall >= 0.9
    assert abs(datetime.fromisoformat(incident.detection["started_at"]) - start) <= timedelta(minutes=20)


@pytest.mark.django_db
def test_eight_weeks_of_normal_data_raise_at_most_one_incident():
    """Every 3 hours (the longest test window), so every hour of the 8 weeks is tested."""
    tenant = TenantFactory()
    build_world(tenant=tenant, seed=7, weeks=12, end=END)
    episodes, previous = [], False
    as_of = END - timedelta(weeks=8)
    started = time.perf_counter()
    runs = 0
    while as_of < END:
        spikes = detect(tenant=tenant, as_of=as_of).spikes
        runs += 1
        if spikes and not previous:
            episodes.append(
                (as_of, [(s.series.signal, s.series.segment, s.observed, s.expected) for s in spikes])
            )
        previous = bool(spikes)
        as_of += timedelta(hours=3)
    print(f"{runs} runs, {(time.perf_counter() - started) / runs:.3f} s each; false alarms: {episodes}")
    assert len(episodes) <= 1


def _suspected_world(tenant, seed=21):
    start = MID - timedelta(hours=3)
    outage = Outage("error.sync_failed", "integration", "salesforce", start, hours=3, share=0.35)
    world = build_world(tenant=tenant, seed=seed, customers=1500, weeks=5, end=MID, outage=outage)
    return world, start


@pytest.mark.django_db
def test_the_command_prints_the_contract_and_a_second_run_updates_the_same_incident():
    tenant = TenantFactory(slug="mon")
    _suspected_world(tenant)
    subscribe(tenant, ["incident.suspected", "incident.opened"])
    out = StringIO()
    call_command("monitor", "--tenant", "mon", "--as-of", (MID - timedelta(hours=1)).isoformat(), stdout=out)
    first = json.loads(out.getvalue())
    assert set(first) == {"as_of", "checked", "suspected"} and first["checked"] > 3
    assert len(first["suspected"]) == 1
    incident = Incident.objects.for_tenant(tenant).get()
    before = incident.detection["customers_affected"]
    out = StringIO()
    call_command("monitor", "--tenant", "mon", "--as-of", MID.isoformat(), stdout=out)
    assert json.loads(out.getvalue())["suspected"] == first["suspected"]
    incident.refresh_from_db()
    assert Incident.objects.for_tenant(tenant).count() == 1
    assert incident.detection["customers_affected"] > before
    assert set(incident.detection) == {
        "signal",
        "segment",
        "started_at",
        "detected_at",
        "customers_affected",
        "expected",
        "observed",
        "p_value",
    }
    runs = PipelineRun.objects.for_tenant(tenant).filter(kind=PipelineRun.Kind.MONITOR)
    assert runs.count() == 2 and {r.status for r in runs} == {"succeeded"}
    [hook] = deliveries(tenant)  # one event for the incident, not one per run
    assert hook.event_type == "incident.suspected"
    assert hook.payload["data"]["status"] == "suspected"
    assert hook.payload["data"]["detection"]["signal"] == "error.sync_failed"


@pytest.mark.django_db
def test_two_runs_of_the_same_window_run_once():
    tenant = TenantFactory()
    assert monitor_run(tenant=tenant, as_of=MID, window_key="w1") is not None
    assert monitor_run(tenant=tenant, as_of=MID, window_key="w1") is None


@pytest.mark.django_db
def test_confirming_through_the_api_notifies_each_affected_customer_once_and_holds_back_nudges():
    tenant = TenantFactory(slug="mon")
    world, start = _suspected_world(tenant)
    monitor_run(tenant=tenant, as_of=MID)
    incident = Incident.objects.for_tenant(tenant).get()
    key = api_key_create(tenant=tenant).secret
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    body = api.get(f"/api/v1/incidents/{incident.pk}").json()
    assert body["status"] == "suspected" and body["detection"]["segment"] == {"integration": "salesforce"}
    assert api.get("/api/v1/incidents?status=suspected").json()["results"][0]["id"] == str(incident.pk)
    assert api.post(f"/api/v1/incidents/{incident.pk}/resolve").status_code == 409
    subscribe(tenant, ["incident.opened"])
    response = api.post(f"/api/v1/incidents/{incident.pk}/confirm")
    assert response.status_code == 200 and response.json()["status"] == "open"
    assert api.post(f"/api/v1/incidents/{incident.pk}/confirm").status_code == 409
    assert [d.event_type for d in deliveries(tenant)] == ["incident.opened"]
    assert api.post(f"/api/v1/incidents/{incident.pk}/dismiss").status_code == 409
    notices = Outreach.objects.for_tenant(tenant).filter(incident=incident, status="sent")
    notified = set(notices.values_list("customer__external_id", flat=True))
    assert notices.count() == len(notified) == len(_affected_ids(tenant, incident, timezone.now()))
    assert len(notified & world.planted_between(start, MID)) >= 0.9 * len(notified)
    # Other nudges to notified customers are held back while it is open.
    playbook = PlaybookFactory(
        tenant=tenant, trigger={"metric": "count(error.*, 365)", "op": "gte", "value": 1}, holdout_percent=0
    )
    playbooks_evaluate(tenant=tenant, as_of=timezone.now())
    nudged = Outreach.objects.for_tenant(tenant).filter(playbook=playbook)
    held = nudged.filter(customer__external_id__in=notified)
    assert held.count() > 0 and set(held.values_list("status", flat=True)) == {"suppressed"}
    # A second notify pass sends nothing new.
    assert incidents_notify(tenant=tenant, as_of=timezone.now())["sent"] == 0


@pytest.mark.django_db
def test_dismissing_closes_a_suspected_incident_and_the_settings_api_validates_monitoring():
    tenant = TenantFactory(slug="mon")
    key = api_key_create(tenant=tenant).secret
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.get("/api/v1/tenant").json()["monitoring"] == {
        "signals": ["error.*"],
        "segment_by": None,
        "auto_open": False,
    }
    bad = api.patch(
        "/api/v1/tenant", {"monitoring": {"signals": ["Bad Name"]}}, content_type="application/json"
    )
    assert bad.status_code == 400 and "monitoring" in bad.json()
    bad = api.patch("/api/v1/tenant", {"monitoring": {"colour": 1}}, content_type="application/json")
    assert bad.status_code == 400
    ok = api.patch(
        "/api/v1/tenant", {"monitoring": {"segment_by": ["integration"]}}, content_type="application/json"
    )
    assert ok.json()["monitoring"] == {
        "signals": ["error.*"],
        "segment_by": ["integration"],
        "auto_open": False,
    }
    _suspected_world(tenant)
    monitor_run(tenant=tenant, as_of=MID)
    incident = Incident.objects.for_tenant(tenant).get()
    response = api.post(f"/api/v1/incidents/{incident.pk}/dismiss")
    assert response.status_code == 200 and response.json()["status"] == "dismissed"
    assert not Outreach.objects.for_tenant(tenant).filter(incident=incident).exists()


@pytest.mark.django_db
def test_auto_open_opens_and_notifies_at_detection():
    tenant = TenantFactory(monitoring={"signals": ["error.*"], "segment_by": None, "auto_open": True})
    _suspected_world(tenant)
    monitor_run(tenant=tenant, as_of=MID)
    incident = Incident.objects.for_tenant(tenant).get()
    assert incident.status == "open"
    assert Outreach.objects.for_tenant(tenant).filter(incident=incident, status="sent").exists()


@pytest.mark.django_db
def test_the_pages_list_show_and_confirm_with_role_checks():
    tenant = TenantFactory(slug="mon")
    _suspected_world(tenant)
    monitor_run(tenant=tenant, as_of=MID)
    incident = Incident.objects.for_tenant(tenant).get()
    viewer, admin = Client(), Client()
    viewer.force_login(MembershipFactory(tenant=tenant, role="viewer").user)
    admin.force_login(MembershipFactory(tenant=tenant, role="admin", user__is_staff=True).user)
    page = viewer.get("/t/mon/incidents/")
    assert page.status_code == 200 and incident.title in page.content.decode()
    detail = viewer.get(f"/t/mon/incidents/{incident.pk}/").content.decode()
    assert "spike-chart" in detail and 'id="confirm"' not in detail
    assert viewer.post(f"/t/mon/incidents/{incident.pk}/confirm/").status_code == 403
    assert 'id="confirm"' in admin.get(f"/t/mon/incidents/{incident.pk}/").content.decode()
    response = admin.post(f"/t/mon/incidents/{incident.pk}/confirm/")
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.status == "open"
    sent = Outreach.objects.for_tenant(tenant).filter(incident=incident, status="sent").count()
    assert sent > 0
    admin.post(f"/t/mon/incidents/{incident.pk}/confirm/")
    assert Outreach.objects.for_tenant(tenant).filter(incident=incident, status="sent").count() == sent
    admin.post(f"/t/mon/incidents/{incident.pk}/resolve/")
    incident.refresh_from_db()
    assert incident.status == "resolved"
    assert (
        "Did the notice prevent contacts?" in admin.get(f"/t/mon/incidents/{incident.pk}/").content.decode()
    )


@pytest.mark.django_db
def test_runs_within_an_hour_share_the_history_reads_and_see_the_same_thing():
    from django.core.cache import cache
    from django.test.utils import CaptureQueriesContext

    tenant = TenantFactory(slug="mon")
    _suspected_world(tenant)
    first, second = MID - timedelta(minutes=50), MID - timedelta(minutes=5)  # the same hour
    detect(tenant=tenant, as_of=first)
    with CaptureQueriesContext(connection) as cached_run:
        cached = detect(tenant=tenant, as_of=second)
    cache.clear()
    with CaptureQueriesContext(connection) as fresh_run:
        fresh = detect(tenant=tenant, as_of=second)
    assert len(cached_run) < len(fresh_run)  # the 28-day history was not read again
    assert [(s.series.signal, s.series.segment, s.observed) for s in cached.spikes] == [
        (s.series.signal, s.series.segment, s.observed) for s in fresh.spikes
    ]
    assert cached.spikes  # the planted outage, seen through the cached history too
    assert cached.alphas == fresh.alphas
    assert cached.series.keys() == fresh.series.keys()
    for key, s in fresh.series.items():
        assert list(cached.series[key].expected) == pytest.approx(list(s.expected)), key


def _history_reads(monkeypatch):
    """Record the [start, end) of every history read the detector makes."""
    from campaigns import monitoring

    reads: list[tuple[datetime, datetime]] = []
    original = monitoring._read_hours

    def recording(cur, tenant_id, match, match_params, keys, start, end):
        reads.append((start, end))
        return original(cur, tenant_id, match, match_params, keys, start, end)

    monkeypatch.setattr(monitoring, "_read_hours", recording)
    return reads


@pytest.mark.django_db
def test_a_later_hour_slides_the_history_reading_only_new_and_settling_hours(monkeypatch):
    from django.core.cache import cache

    from campaigns.monitoring import HISTORY_DAYS, RECENT_HOURS, SETTLE_HOURS

    tenant = TenantFactory(slug="mon")
    _suspected_world(tenant)
    reads = _history_reads(monkeypatch)
    detect(tenant=tenant, as_of=MID - timedelta(hours=6, minutes=10))
    later = MID - timedelta(minutes=5)
    slid = detect(tenant=tenant, as_of=later)
    recent_start = later.replace(minute=0) - timedelta(hours=RECENT_HOURS - 1)
    assert reads[0] == (
        recent_start - timedelta(hours=6) - timedelta(days=HISTORY_DAYS),
        recent_start - timedelta(hours=6),
    )
    assert reads[1] == (recent_start - timedelta(hours=6 + SETTLE_HOURS), recent_start)  # not 28 days
    cache.clear()
    fresh = detect(tenant=tenant, as_of=later)
    assert reads[2][1] - reads[2][0] == timedelta(days=HISTORY_DAYS)
    assert slid.spikes and [(s.series.signal, s.series.segment, s.observed) for s in slid.spikes] == [
        (s.series.signal, s.series.segment, s.observed) for s in fresh.spikes
    ]
    assert slid.alphas == fresh.alphas and slid.tests == fresh.tests
    assert slid.series.keys() == fresh.series.keys()
    for key, s in fresh.series.items():
        assert list(slid.series[key].expected) == pytest.approx(list(s.expected)), key


@pytest.mark.django_db
def test_late_signals_are_seen_at_the_next_slide_or_at_the_daily_refresh():
    from campaigns.monitoring import RECENT_HOURS, _history, history_refresh, history_refresh_due
    from proactive.ingest import signals_ingest
    from proactive.rollups import rollups_fold

    tenant = TenantFactory(slug="mon")
    world, _start = _suspected_world(tenant)
    patterns = ["error.*"]
    as_of = MID - timedelta(minutes=5)
    recent_start = as_of.replace(minute=0) - timedelta(hours=RECENT_HOURS - 1)
    detect(tenant=tenant, as_of=as_of - timedelta(hours=1))

    def total(name: str, end: datetime = recent_start) -> int:
        state = _history(tenant, patterns, [], end)
        return int(state.counts[:, state.names.index(name)].sum()) if name in state.names else 0

    before = total("error.late_report", recent_start - timedelta(hours=1))
    customers = [str(x) for x in world.external_ids[:5]]
    hours_ago = {"recent": 3, "old": 24 * 5}  # before the window: 3 h (settling), 5 days
    for label, h in hours_ago.items():
        signals_ingest(
            tenant=tenant,
            records=[
                {
                    "id": f"late-{label}-{c}",
                    "customer": c,
                    "name": "error.late_report",
                    "timestamp": (recent_start - timedelta(hours=h, minutes=30)).isoformat(),
                }
                for c in customers
            ],
            now=MID,
        )
    rollups_fold(tenant_id=tenant.pk)
    assert total("error.late_report") == before + 5  # the next hour's slide rereads the settling hours
    assert not history_refresh_due(tenant=tenant, as_of=as_of)
    assert history_refresh_due(tenant=tenant, as_of=as_of + timedelta(hours=21))
    history_refresh(tenant=tenant, as_of=as_of)
    assert total("error.late_report") == before + 10  # the daily full reread sees the older ones


@pytest.mark.django_db
def test_the_monitoring_fan_out_asks_for_the_daily_refresh_only_when_it_is_due(monkeypatch):
    from django.core.cache import cache

    from campaigns import tasks

    TenantFactory(slug="mon")
    refreshed: list[int] = []
    real = tasks.history_refresh
    monkeypatch.setattr(
        tasks,
        "history_refresh",
        lambda *, tenant, as_of: refreshed.append(tenant.pk) or real(tenant=tenant, as_of=as_of),
    )
    tasks.schedule_monitoring()
    assert len(refreshed) == 1  # none cached yet: a full read, as its own task
    cache.delete(f"monitor-history-refresh:{refreshed[0]}")  # the 10-minute guard against two beats
    tasks.schedule_monitoring()
    assert len(refreshed) == 1  # read within the last 20 hours: the runs slide it
