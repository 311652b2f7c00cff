"""The ``cron`` of a Vertex AI Schedule: five fields, optionally prefixed with a time zone.

Vertex AI's schema: "To explicitly set a timezone to the cron tab, apply a prefix in the
cron tab: "CRON_TZ=${IANA_TIME_ZONE}" or "TZ=${IANA_TIME_ZONE}" ... For example,
"CRON_TZ=America/New_York 1 * * * *"". Without a prefix the cron is in UTC.

Parsing and iteration are croniter's; this module only refuses what Vertex's unix-cron
does not take (six or seven fields with seconds or years, an unknown zone), so an
expression the twin accepts is one Vertex accepts too. Times in and out are aware UTC
datetimes; a zone's daylight-saving changes are croniter's (a 02:30 fire on a spring-forward
night happens once, at 03:00 local, as cron does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from ..errors import invalid

_PREFIXES = ("CRON_TZ=", "TZ=")
# @hourly, @daily ... are croniter extensions; Vertex documents the five-field form only.
_FIELDS = 5
# unix-cron's characters; croniter's extensions (L, W, #, ?, H) are refused. Month and
# day-of-week fields may use three-letter names (JAN, MON).
_NUMERIC_FIELD = re.compile(r"[0-9*/,-]+")
_NAMED_FIELD = re.compile(r"(?:[0-9*/,-]|(?<![A-Za-z])[A-Za-z]{3}(?![A-Za-z]))+")


@dataclass(frozen=True)
class Cron:
    """A parsed cron: its five fields and its zone (``UTC`` without a prefix)."""

    text: str
    fields: str
    zone: ZoneInfo

    def next_after(self, moment: datetime) -> datetime:
        """The first fire strictly after ``moment`` (aware), in UTC."""
        local = moment.astimezone(self.zone)
        fire = croniter(self.fields, local).get_next(datetime)
        return fire.astimezone(UTC)

    def first_at_or_after(self, moment: datetime) -> datetime:
        """The first fire at ``moment`` or later: "after which the first run can be
        scheduled" includes a start time that is itself a fire time."""
        return self.next_after(moment - timedelta(microseconds=1))


def parse_cron(text: str, field: str = "cron") -> Cron:
    """``text`` as a Cron; 400 INVALID_ARGUMENT naming ``field`` if Vertex would refuse it."""
    if not isinstance(text, str) or not text.strip():
        raise invalid(f"Invalid {field}: it is required (five fields, e.g. \"0 2 * * *\").")
    body, zone = text.strip(), ZoneInfo("UTC")
    for prefix in _PREFIXES:
        if body.startswith(prefix):
            name, _, body = body[len(prefix) :].partition(" ")
            zone = _zone(name, text, field)
            break
    fields = body.split()
    if len(fields) != _FIELDS:
        raise invalid(
            f"Invalid {field} {text[:100]!r}: expected 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(fields)}."
        )
    for i, value in enumerate(fields):
        if not (_NAMED_FIELD if i >= 3 else _NUMERIC_FIELD).fullmatch(value):
            raise invalid(f"Invalid {field} {text[:100]!r}: {value[:30]!r} is not a unix-cron field.")
    normalized = " ".join(fields)
    try:
        croniter(normalized, datetime(2000, 1, 1, tzinfo=UTC)).get_next(datetime)
    except (CroniterError, ValueError, KeyError) as exc:
        raise invalid(f"Invalid {field} {text[:100]!r}: {str(exc)[:200]}") from None
    return Cron(text=text, fields=normalized, zone=zone)


def _zone(name: str, text: str, field: str) -> ZoneInfo:
    try:
        if not name or name.startswith(("/", ".")) or ".." in name:
            raise ValueError
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid(
            f"Invalid {field} {text[:100]!r}: {name[:60]!r} is not a time zone of the IANA database."
        ) from None
