"""A minimal Cloud Logging v2 ``entries:list`` over the pipeline tasks' logs (task_logs.py).

Request and answer follow the published schema (google-api-python-client's
``logging.v2.json``, revision 20260911: ListLogEntriesRequest, ListLogEntriesResponse,
LogEntry; https://cloud.google.com/logging/docs/reference/v2/rest/v2/entries/list), with the
limits Google states there (all sources below read 2026-12-07):

* ``resourceNames`` is required, at most 100; only ``projects/PROJECT`` is served here
  (organizations, folders, billing accounts and log views: 400). ``projectIds`` (deprecated)
  adds ``projects/ID``.
* ``filter`` at most 20,000 characters; ``orderBy`` only ``timestamp asc`` (the default) or
  ``timestamp desc``, entries of equal timestamp in ``insertId`` order.
* ``pageSize`` default 50; negative is rejected, and so is more than 1000: the reference
  said "If the value is negative or exceeds 1000, the request is rejected" (the PHP client's
  ListLogEntriesRequest, https://cloud.google.com/php/docs/reference/cloud-logging/1.30.1/V2.ListLogEntriesRequest)
  and gcloud pages with 1000, "API max" (googlecloudsdk/command_lib/logs/stream.py).
* ``pageToken`` must come from the same request (other parameters identical, as Google says).

The filter is a strict subset of the Logging query language
(https://cloud.google.com/logging/docs/view/logging-query-language): comparisons joined by
``AND`` or by juxtaposition, on ``resource.type`` (``ml_job``, the only resource the twin
logs), ``resource.labels.job_id|task_name|project_id`` and ``logName`` (``=``, ``!=``),
``severity`` (``=`` ``!=`` ``<`` ``<=`` ``>`` ``>=``, by LogSeverity order) and ``timestamp``
(the same, as instants). ``OR``, ``NOT``, parentheses, ``:`` (has), regular expressions,
functions and other fields are 400 INVALID_ARGUMENT, never ignored.
"""

from __future__ import annotations

import heapq
import itertools
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from . import task_logs
from .aip160 import COMPARE, tokenize
from .errors import invalid
from .ids import NAME_SEGMENT_RE

MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE = 1000, 50
MAX_RESOURCE_NAMES, MAX_FILTER_CHARS = 100, 20_000
ORDERS = {"timestamp asc": False, "timestamp desc": True}
REQUEST_FIELDS = {"resourceNames", "projectIds", "filter", "orderBy", "pageSize", "pageToken"}
SNAKE_FIELDS = {"resource_names": "resourceNames", "project_ids": "projectIds", "order_by": "orderBy"}
SNAKE_FIELDS |= {"page_size": "pageSize", "page_token": "pageToken"}
# LogSeverity, in order (logging.v2.json, LogEntry.severity).
SEVERITIES = ("DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY")
LABELS = ("job_id", "task_name", "project_id")
Entry = dict[str, Any]


@dataclass
class LogQuery:
    """A checked request: projects, the filter's predicates, order, page."""

    projects: list[str]
    per_log: list[Callable[[Entry], bool]] = field(default_factory=list)  # on a log's fixed fields
    per_record: list[Callable[[dict], bool]] = field(default_factory=list)  # on a line (task_logs record)
    job_ids: set[str] = field(default_factory=set)  # a job_id= term: only that job's log is read
    descending: bool = False
    page_size: int = DEFAULT_PAGE_SIZE
    page_token: str = ""
    key: str = ""  # what a page token is bound to


def bad_filter(text: str, why: str):
    return invalid(
        f"Invalid filter {text[:200]!r}: {why} (the local Cloud Logging serves a subset; see cloud_logging.py)"
    )


def parse_request(body: Any) -> LogQuery:
    """The ListLogEntriesRequest, checked; 400 INVALID_ARGUMENT naming what is wrong."""
    if not isinstance(body, dict):
        raise invalid("Invalid JSON payload received. Expected an object.")
    body = {SNAKE_FIELDS.get(k, k): v for k, v in body.items()}
    for name in body:
        if name not in REQUEST_FIELDS:
            raise invalid(f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')
    names = _string_list(body, "resourceNames") + [f"projects/{p}" for p in _string_list(body, "projectIds")]
    if not names:
        raise invalid("resource_names: at least one resource name is required (projects/PROJECT_ID).")
    if len(names) > MAX_RESOURCE_NAMES:
        raise invalid(f"resource_names: at most {MAX_RESOURCE_NAMES} resource names, got {len(names)}.")
    projects = []
    for name in names:
        project = name.removeprefix("projects/")
        if project == name or not NAME_SEGMENT_RE.fullmatch(project):
            raise invalid(f"resource_names: {name[:200]!r} is not served here (only projects/PROJECT_ID).")
        projects.append(project)
    text, order, size, token = (_field(body, k, t) for k, t in _SCALARS)
    if len(text) > MAX_FILTER_CHARS:
        raise invalid(f"filter: at most {MAX_FILTER_CHARS} characters, got {len(text)}.")
    if order.strip() and order.strip() not in ORDERS:
        raise invalid(f'order_by: {order[:100]!r} is not "timestamp asc" or "timestamp desc".')
    if size < 0 or size > MAX_PAGE_SIZE:
        raise invalid(f"page_size: {size} is out of range (0 to {MAX_PAGE_SIZE}).")
    query = LogQuery(sorted(set(projects)), descending=ORDERS.get(order.strip(), False))
    query.page_size, query.page_token = size or DEFAULT_PAGE_SIZE, token
    query.key = f"{query.projects}|{text}|{order.strip()}"
    parse_filter(text, query)
    return query


_SCALARS = (("filter", str), ("orderBy", str), ("pageSize", int), ("pageToken", str))


def _field(body: dict, name: str, kind: type) -> Any:
    value = body.get(name, kind())
    if kind is int and isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        value = int(value)  # protobuf JSON accepts an int32 as a string too
    if not isinstance(value, kind) or isinstance(value, bool):
        raise invalid(f"Invalid value at '{name}': {str(value)[:80]!r} is not a {kind.__name__}.")
    return value


def _string_list(body: dict, name: str) -> list[str]:
    value = body.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(f"Invalid value at '{name}': expected a list of strings.")
    return value


def parse_filter(text: str, query: LogQuery) -> None:
    """Adds the filter's predicates (and the job ids it pins) to ``query``."""
    tokens = tokenize(text) if text.strip() else []
    pos = 0
    while pos < len(tokens):
        if tokens[pos] == ("word", "AND"):
            if pos == 0 or pos == len(tokens) - 1 or tokens[pos + 1] == ("word", "AND"):
                raise bad_filter(text, "AND needs a comparison on each side")
            pos += 1
            continue
        if len(tokens) - pos < 3 or tokens[pos][0] != "word" or tokens[pos + 1][0] != "op":
            raise bad_filter(text, f"expected a comparison (field, operator, value) at {tokens[pos][1]!r}")
        (_, name), (_, op), (kind, value) = tokens[pos : pos + 3]
        if name in ("OR", "NOT") or kind not in ("string", "word"):
            raise bad_filter(text, f"{name if name in ('OR', 'NOT') else value!r} is not supported")
        _comparison(text, name, op, value, query)
        pos += 3


def _comparison(text: str, name: str, op: str, value: str, query: LogQuery) -> None:
    """Adds the comparison's predicate: severity and timestamp vary by line, the rest by log."""
    if op == ":":
        raise bad_filter(text, f"':' (has) is not supported; use = ({name})")
    if value.startswith("~"):
        raise bad_filter(text, f"regular expressions (=~, !~) are not supported ({name})")
    cmp = COMPARE[op]
    if name == "severity":
        if value.upper() not in SEVERITIES:
            raise bad_filter(text, f"{value!r} is not a LogSeverity ({', '.join(SEVERITIES)})")
        level = SEVERITIES.index(value.upper())
        query.per_record.append(lambda r: cmp(SEVERITIES.index(r["s"]), level))
        return
    if name == "timestamp":
        when = _instant(text, value)
        query.per_record.append(lambda r: cmp(_instant(text, r["t"]), when))
        return
    if op not in ("=", "!="):
        raise bad_filter(text, f"{name} takes = or !=")
    if name == "resource.type":
        if value != task_logs.RESOURCE_TYPE:
            raise bad_filter(text, f"resource.type {value!r}: the local Cloud Logging keeps only ml_job (task logs)")
        query.per_log.append(lambda e: cmp(e["resource"]["type"], value))
        return
    if name == "logName":
        query.per_log.append(lambda e: cmp(e["logName"], value))
        return
    label = name.removeprefix("resource.labels.")
    if label not in LABELS or label == name:
        raise bad_filter(text, f"unknown or unsupported field {name!r}")
    if label == "job_id" and op == "=":
        query.job_ids.add(value)
    query.per_log.append(lambda e: cmp(e["resource"]["labels"][label], value))


def _instant(text: str, value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad_filter(text, f"{value!r} is not an RFC 3339 timestamp") from None
    if when.tzinfo is None:
        raise bad_filter(text, f"{value!r} has no time zone (RFC 3339 needs Z or an offset)")
    return when


def _parsed_lines(chunk: bytes) -> list[dict]:
    """The JSON lines of ``chunk``: parsed as one array (a third of the time of line by line),
    else line by line, skipping a line a crash left broken rather than serving it."""
    lines = [line for line in chunk.splitlines() if line.strip()]
    try:
        return json.loads(b"[" + b",".join(lines) + b"]")
    except ValueError:
        pass
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


class TaskLogReader:
    """Cloud Logging's view of the tasks' log files. Their parsed lines are kept for the last
    ``files`` files read, and a file that grew is parsed from where the last read stopped
    (the files are append-only), so following a running task re-reads only its new lines."""

    def __init__(self, data_dir: Path, files: int = 64) -> None:
        self.data_dir, self.files = Path(data_dir), files
        self._lock = threading.Lock()
        self._parsed: OrderedDict[Path, tuple[int, list[dict]]] = OrderedDict()  # path: (bytes parsed, lines)

    def records(self, path: Path) -> list[dict]:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return []
        with self._lock:
            done, records = self._parsed.get(path, (0, []))
        if size > done:
            with open(path, "rb") as fh:
                fh.seek(done)
                chunk = fh.read(size - done)
            complete = chunk.rfind(b"\n") + 1  # a half-written last line waits for the next read
            # Kept in time order: lines of the two streams may be written slightly out of it.
            records = sorted(records + _parsed_lines(chunk[:complete]), key=lambda r: (r["t"], r["n"]))
            done += complete
        with self._lock:
            self._parsed[path] = (done, records)
            self._parsed.move_to_end(path)
            while len(self._parsed) > self.files:
                self._parsed.popitem(last=False)
        return records

    def page(self, query: LogQuery, offset: int) -> tuple[list[Entry], bool]:
        """The LogEntries of one page from ``offset``, and whether more follow: each log's
        matching lines (kept in time order) merged in the query's order, equal timestamps in
        insertId order (job id, then line number); only the lines up to the page are walked."""
        streams = []
        for project, path in self._paths(query):
            job_id = path.stem
            fixed = task_logs.log_entry(project, job_id, {"t": "", "s": "DEFAULT", "m": "", "n": 0})
            if all(p(fixed) for p in query.per_log):
                lines = self.records(path)
                ordered = reversed(lines) if query.descending else lines
                if query.per_record:  # lazily: only the lines up to the page are tested
                    ordered = (r for r in ordered if all(p(r) for p in query.per_record))
                streams.append(_keyed(project, job_id, ordered))
        merged = heapq.merge(*streams, key=lambda item: item[0], reverse=query.descending)
        wanted = list(itertools.islice(merged, offset + query.page_size + 1))
        page = [task_logs.log_entry(project, job_id, r) for _, project, job_id, r in wanted[offset:][: query.page_size]]
        return page, len(wanted) > offset + query.page_size

    def _paths(self, query: LogQuery) -> list[tuple[str, Path]]:
        paths = []
        for project in query.projects:
            folder = task_logs.log_dir(self.data_dir, project)
            if query.job_ids:  # two different job_id= terms match nothing, as the filter says
                paths += [(project, folder / f"{j}.jsonl") for j in query.job_ids if re.fullmatch(r"\d{1,20}", j)]
            else:
                paths += [(project, path) for path in sorted(folder.glob("*.jsonl"))]
        return paths


def _keyed(project: str, job_id: str, lines):
    for r in lines:
        yield (r["t"], job_id, r["n"]), project, job_id, r
