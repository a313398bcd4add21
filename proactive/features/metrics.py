"""The metric grammar of the contract, parsed once.

    count(PATTERN, DAYS)     signals matching PATTERN in (as_of - DAYS, as_of]
    count_since(PATTERN, ISO) signals matching PATTERN in [ISO, as_of] (ISO: a time with an offset)
    days_since_last(PATTERN) days since the latest matching signal at or before as_of
    trend(PATTERN)           count in the last 7 days / (count in the 28 days before / 4)
    days_since_signup        days from signed_up_at to as_of
    risk_score               the customer's latest risk score
    attribute.KEY            a customer attribute

PATTERN is a signal name or a prefix ending in `*` (`error.*`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from proactive.signal_patterns import is_prefix, pattern_prefix


class MetricError(ValueError):
    pass


class Kind(StrEnum):
    COUNT = "count"
    COUNT_SINCE = "count_since"
    DAYS_SINCE_LAST = "days_since_last"
    TREND = "trend"
    DAYS_SINCE_SIGNUP = "days_since_signup"
    RISK_SCORE = "risk_score"
    ATTRIBUTE = "attribute"


NAME_RE = re.compile(r"^[a-z0-9_.:-]{1,100}$")
PATTERN_RE = re.compile(r"^[a-z0-9_.:-]{0,99}\*$")
ATTRIBUTE_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
CALL_RE = re.compile(r"^(?P<fn>[a-z_]+)\((?P<args>[^()]*)\)$")
MAX_DAYS = 3650

# The spellings `parse_metric` accepts, as one regular expression: the OpenAPI schema publishes
# it and `parse_metric` checks it first, so the two cannot disagree. It reads the same in
# Python and ECMA 262 (spaces, not `\s`; explicit digit ranges). DAYS is 1..MAX_DAYS without
# sign or leading zeros; ISO is a calendar date in 1900-2099 with a time and an offset.
_NAME = r"[a-z0-9_.:-]{1,100}"
_SIGNAL = rf"(?:{_NAME}|[a-z0-9_.:-]{{0,99}}\*)"
_DAYS = r"(?:[1-9][0-9]{0,2}|[12][0-9]{3}|3[0-5][0-9]{2}|36[0-4][0-9]|3650)"
_MONTH_DAY = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_LEAP_DAY = r"(?:19(?:0[48]|[2468][048]|[13579][26])|20(?:[02468][048]|[13579][26]))-02-29"
_ISO = (
    rf"(?:(?:19|20)[0-9]{{2}}-{_MONTH_DAY}|{_LEAP_DAY})"
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
ATTRIBUTE_METRIC_PATTERN = r"^ *attribute\.[A-Za-z0-9_.-]{1,100} *$"
NUMERIC_METRIC_PATTERN = (
    r"^ *(?:days_since_signup|risk_score"
    rf"|count\( *{_SIGNAL} *, *{_DAYS} *\)"
    rf"|count_since\( *{_SIGNAL} *, *{_ISO} *\)"
    rf"|(?:days_since_last|trend)\( *{_SIGNAL} *\)) *$"
)
_SPELLINGS = (re.compile(NUMERIC_METRIC_PATTERN), re.compile(ATTRIBUTE_METRIC_PATTERN))


@dataclass(frozen=True)
class Metric:
    kind: Kind
    pattern: str | None = None
    days: int | None = None
    key: str | None = None
    since: datetime | None = None

    @property
    def is_prefix(self) -> bool:
        return bool(self.pattern and is_prefix(self.pattern))

    @property
    def prefix(self) -> str:
        if self.pattern is None:
            raise MetricError(f"{self} has no signal pattern")
        return pattern_prefix(self.pattern)

    @property
    def is_numeric(self) -> bool:
        return self.kind is not Kind.ATTRIBUTE

    def __str__(self) -> str:
        if self.kind is Kind.COUNT:
            return f"count({self.pattern}, {self.days})"
        if self.kind is Kind.COUNT_SINCE and self.since is not None:
            return f"count_since({self.pattern}, {self.since.isoformat()})"
        if self.kind in (Kind.DAYS_SINCE_LAST, Kind.TREND):
            return f"{self.kind}({self.pattern})"
        if self.kind is Kind.ATTRIBUTE:
            return f"attribute.{self.key}"
        return str(self.kind)


def _pattern(raw: str, text: str) -> str:
    raw = raw.strip()
    if not (NAME_RE.match(raw) or PATTERN_RE.match(raw)):
        raise MetricError(
            f"{text!r}: {raw!r} is not a signal name or a prefix ending in '*' (lowercase a-z, 0-9, _ . : -)"
        )
    return raw


def parse_metric(text: str) -> Metric:
    """Parse one metric expression; raises MetricError naming what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise MetricError("a metric must be a non-empty string")
    if not any(spelling.search(text) for spelling in _SPELLINGS):
        metric = _parse(text.strip())  # raises naming the bad part, if there is one
        if metric.kind is Kind.COUNT_SINCE:
            raise MetricError(f"{text!r}: the time must be like 2026-01-31T10:00:00+00:00, in 1900-2099")
        raise MetricError(f"{text!r}: write it as {metric}")
    return _parse(text.strip())


def _parse(text: str) -> Metric:
    if text == "days_since_signup":
        return Metric(Kind.DAYS_SINCE_SIGNUP)
    if text == "risk_score":
        return Metric(Kind.RISK_SCORE)
    if text.startswith("attribute."):
        key = text.removeprefix("attribute.")
        if not ATTRIBUTE_KEY_RE.match(key):
            raise MetricError(f"{text!r}: attribute keys are 1-100 characters of A-Z a-z 0-9 _ . -")
        return Metric(Kind.ATTRIBUTE, key=key)
    call = CALL_RE.match(text)
    if call is None:
        raise MetricError(
            f"{text!r} is not a metric: use count(PATTERN, DAYS), count_since(PATTERN, ISO), "
            "days_since_last(PATTERN), trend(PATTERN), "
            "days_since_signup, risk_score or attribute.KEY"
        )
    fn, args = call["fn"], [a.strip() for a in call["args"].split(",")]
    if fn == "count":
        if len(args) != 2:
            raise MetricError(f"{text!r}: count takes a pattern and a number of days, e.g. count(error.*, 7)")
        try:
            days = int(args[1])
        except ValueError:
            raise MetricError(f"{text!r}: {args[1]!r} is not a whole number of days") from None
        if not 1 <= days <= MAX_DAYS:
            raise MetricError(f"{text!r}: days must be between 1 and {MAX_DAYS}")
        return Metric(Kind.COUNT, pattern=_pattern(args[0], text), days=days)
    if fn == Kind.COUNT_SINCE:
        if len(args) != 2:
            raise MetricError(
                f"{text!r}: count_since takes a pattern and a time, "
                "e.g. count_since(error.*, 2026-01-31T10:00:00+00:00)"
            )
        try:
            since = datetime.fromisoformat(args[1])
            since.astimezone(UTC)
        except (ValueError, OverflowError):
            raise MetricError(f"{text!r}: {args[1]!r} is not an ISO 8601 time") from None
        if since.tzinfo is None:
            raise MetricError(f"{text!r}: {args[1]!r} has no UTC offset")
        return Metric(Kind.COUNT_SINCE, pattern=_pattern(args[0], text), since=since.astimezone(UTC))
    if fn in (Kind.DAYS_SINCE_LAST, Kind.TREND):
        if len(args) != 1 or not args[0]:
            raise MetricError(f"{text!r}: {fn} takes exactly one pattern, e.g. {fn}(session.*)")
        return Metric(Kind(fn), pattern=_pattern(args[0], text))
    raise MetricError(f"{text!r}: unknown function {fn!r}")
