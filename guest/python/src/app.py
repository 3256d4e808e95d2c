"""tarn's sample guest in Python (componentize-py).

The same endpoints and JSON as the Rust guest (guest/rust/README.md). One fresh
instance serves one request.
"""

import json
import math
import os
import re
import struct

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.handler import Request, Response
from wit_world.imports import types as t
from wit_world.imports.database import Database, IsolationLevel, Transaction, TransactionOptions

DEFAULT_DATABASE = "default"
DEFAULT_STATEMENT_TIMEOUT_MS = 5000
I64_MIN, I64_MAX, U64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
CT = ("content-type", "application/json")


# ---------------------------------------------------------------------------
# Settings and responses


def settings():
    """(database, statement_timeout_ms or None) from the environment."""
    db = os.environ.get("TARN_DATABASE", "").strip() or DEFAULT_DATABASE
    raw = os.environ.get("QUERY_STATEMENT_TIMEOUT_MS", "").strip()
    timeout = DEFAULT_STATEMENT_TIMEOUT_MS
    if re.fullmatch(r"\+?[0-9]+", raw) and int(raw) <= 0xFFFFFFFF:
        timeout = int(raw)
    return db, (timeout or None)


def json_response(status, body, headers=()):
    data = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return Response(status=status, headers=[CT, *headers], body=data.encode())


def error(status, message):
    return json_response(status, {"error": message})


class Reply(Exception):
    """A response raised out of a handler."""

    def __init__(self, response):
        self.response = response


def bad_request(message):
    return Reply(error(400, message))


# ---------------------------------------------------------------------------
# Database errors

KINDS = [
    (t.Error_QueryFailed, "query-failed", 400),
    (t.Error_PoolTimeout, "pool-timeout", 503),
    (t.Error_ConnectionFailed, "connection-failed", 503),
    (t.Error_BadParameter, "bad-parameter", 400),
    (t.Error_ValueConversion, "value-conversion", 400),
    (t.Error_NotAllowed, "not-allowed", 403),
    (t.Error_TooLarge, "too-large", 400),
    (t.Error_Timeout, "timeout", 504),
]


def error_message(e):
    if isinstance(e, t.Error_QueryFailed):
        return e.value.message
    if isinstance(e, t.Error_PoolTimeout):
        return "timed out waiting for a database connection"
    return e.value


def db_error_response(e):
    kind, status = next(((k, s) for cls, k, s in KINDS if isinstance(e, cls)), ("unknown", 500))
    body = {"error": error_message(e)}
    headers = []
    if isinstance(e, t.Error_QueryFailed):
        d = e.value
        body["code"] = d.code
        body["severity"] = d.severity
        if d.detail is not None:
            body["detail"] = d.detail
        if d.hint is not None:
            body["hint"] = d.hint
    elif isinstance(e, t.Error_PoolTimeout):
        p = e.value
        body.update(
            pool_size=p.pool_size,
            max_overflow=p.max_overflow,
            checked_out=p.checked_out,
            waiting=p.waiting,
            waited_ms=p.waited_ms,
        )
        headers.append(("retry-after", "1"))
    body["kind"] = kind
    return json_response(status, body, headers)


def is_code(err, code):
    return isinstance(err.value, t.Error_QueryFailed) and err.value.value.code == code


# ---------------------------------------------------------------------------
# Values


def _reject_constant(name):
    raise ValueError(f"invalid JSON constant {name}")


def json_object(req):
    try:
        v = json.loads(bytes(req.body).decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise bad_request(f"invalid JSON body: {e}")
    if not isinstance(v, dict):
        raise bad_request("request body must be a JSON object")
    return v


def string_field(obj, key):
    if key not in obj:
        raise bad_request(f"missing `{key}`")
    v = obj[key]
    if not isinstance(v, str):
        raise bad_request(f"`{key}` must be a string")
    return v


def param_from_json(v):
    """null → null, bool → boolean, integer → int64 (above i64 up to u64 →
    numeric), other number → float64, string → text, array/object → json."""
    if v is None:
        return t.Value_Null()
    if isinstance(v, bool):
        return t.Value_Boolean(v)
    if isinstance(v, int):
        if I64_MIN <= v <= I64_MAX:
            return t.Value_Int64(v)
        if I64_MAX < v <= U64_MAX:  # exact, as the Rust guest (serde_json keeps u64)
            return t.Value_Numeric(str(v))
        return t.Value_Float64(float(v))
    if isinstance(v, float):
        return t.Value_Float64(v)
    if isinstance(v, str):
        return t.Value_Text(v)
    return t.Value_Json(json.dumps(v, ensure_ascii=False, separators=(",", ":")))


def float_json(f):
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    return float(f)


def shortest_f32(f):
    if not math.isfinite(f):
        return f
    for p in range(1, 10):
        s = float(f"{f:.{p}g}")
        if struct.unpack("<f", struct.pack("<f", s))[0] == f:
            return s
    return f


def format_date(d):
    y = f"-{-d.year:04d}" if d.year < 0 else f"{d.year:04d}"
    return f"{y}-{d.month:02d}-{d.day:02d}"


def format_time(tm):
    s = f"{tm.hour:02d}:{tm.minute:02d}:{tm.second:02d}"
    return s if tm.microsecond == 0 else f"{s}.{tm.microsecond:06d}"


def format_timestamp(ts):
    return f"{format_date(ts.date)}T{format_time(ts.time)}"


def value_to_json(v):
    if isinstance(v, t.Value_Null):
        return None
    if isinstance(v, (t.Value_Float32,)):
        return float_json(shortest_f32(v.value))
    if isinstance(v, t.Value_Float64):
        return float_json(v.value)
    if isinstance(v, t.Value_Bytes):
        return "\\x" + bytes(v.value).hex()
    if isinstance(v, t.Value_Json):
        try:
            return json.loads(v.value)
        except ValueError:
            return v.value
    if isinstance(v, t.Value_Date):
        return format_date(v.value)
    if isinstance(v, t.Value_Time):
        return format_time(v.value)
    if isinstance(v, t.Value_Timestamptz):
        return format_timestamp(v.value) + "Z"
    if isinstance(v, t.Value_Timestamp):
        return format_timestamp(v.value)
    # boolean, int16/32/64, text, uuid, numeric
    return v.value


def row_to_object(columns, row):
    return {c.name: value_to_json(v) for c, v in zip(columns, row)}


# ---------------------------------------------------------------------------
# Seed endpoints


def query(db_name, timeout, req):
    body = json_object(req)
    sql = string_field(body, "sql")
    if not sql.strip():
        raise bad_request("`sql` must not be empty")
    p = body.get("params")
    if p is None:
        params = []
    elif isinstance(p, list):
        params = [param_from_json(x) for x in p]
    else:
        raise bad_request("`params` must be an array")
    with Database.open(db_name) as db:
        tx = db.begin(TransactionOptions(IsolationLevel.READ_COMMITTED, True, timeout))
        try:
            rs = tx.query(sql, params)
        finally:
            try:
                Transaction.rollback(tx)  # read only: nothing to commit
            except Err:
                pass
    return json_response(
        200,
        {
            "columns": [c.name for c in rs.columns],
            "rows": [[value_to_json(v) for v in row] for row in rs.rows],
            "row_count": len(rs.rows),
        },
    )


def health_db(db_name):
    try:
        with Database.open(db_name) as db:
            h = db.health()
    except Err as e:
        return json_response(
            503, {"database_healthy": False, "status": "disconnected", "error": error_message(e.value)}
        )
    if h.healthy:
        return json_response(200, {"database_healthy": True, "status": "connected"})
    reason = h.error if h.error is not None and h.error.strip() else "database unreachable"
    return json_response(503, {"database_healthy": False, "status": "disconnected", "error": reason})


def config(db_name):
    with Database.open(db_name) as db:
        c = db.pool_config()
    return json_response(
        200,
        {
            "name": c.name,
            "url": c.url,
            "pool_size": c.pool_size,
            "max_overflow": c.max_overflow,
            "pool_timeout": float(c.pool_timeout_seconds),
            "pool_recycle": c.pool_recycle_seconds,
            "pool_pre_ping": c.pool_pre_ping,
            "lazy_init": c.lazy_init,
        },
    )


def pool_stats(db_name):
    with Database.open(db_name) as db:
        s = db.pool_stats()
    return json_response(
        200,
        {
            "size": s.size,
            "checked_in": s.checked_in,
            "checked_out": s.checked_out,
            "overflow": s.overflow,
            "total": s.total,
            "waiting": s.waiting,
        },
    )


# ---------------------------------------------------------------------------
# Notes

CREATE_NOTES = (
    "CREATE TABLE IF NOT EXISTS notes (id bigserial primary key, "
    "title text not null, body text not null, created_at timestamptz not null default now())"
)
INSERT_NOTE = "INSERT INTO notes (title, body) VALUES ($1, $2) RETURNING id, title, body, created_at"
SELECT_NOTE = "SELECT id, title, body, created_at FROM notes WHERE id = $1"
LIST_NOTES = "SELECT id, title, body, created_at FROM notes ORDER BY id DESC LIMIT 50"
DELETE_NOTE = "DELETE FROM notes WHERE id = $1"
MAX_TITLE_CHARS = 200


def note_not_found():
    return Reply(error(404, "note not found"))


def note_id(raw):
    if re.fullmatch(r"[+-]?[0-9]+", raw):
        n = int(raw)
        if I64_MIN <= n <= I64_MAX:
            return n
    raise Reply(json_response(400, {"error": "note id must be a 64-bit integer", "id": raw}))


def insert_note(db, timeout, params):
    tx = db.begin(TransactionOptions(IsolationLevel.READ_COMMITTED, False, timeout))
    try:
        rs = tx.query(INSERT_NOTE, params)
    except Err:
        try:
            Transaction.rollback(tx)
        except Err:
            pass
        raise
    Transaction.commit(tx)
    if not rs.rows:
        raise Err(t.Error_ValueConversion("INSERT ... RETURNING returned no row"))
    return row_to_object(rs.columns, rs.rows[0])


def create_notes_table(db):
    try:
        db.execute(CREATE_NOTES, [])
    except Err as e:
        # Concurrent CREATE TABLE IF NOT EXISTS: the table is there now.
        if not (is_code(e, "23505") or is_code(e, "42P07")):
            raise


def create_note(db_name, timeout, req):
    body = json_object(req)
    title = string_field(body, "title")
    text = string_field(body, "body")
    if not 1 <= len(title) <= MAX_TITLE_CHARS:
        raise bad_request(f"`title` must be 1 to {MAX_TITLE_CHARS} characters")
    params = [t.Value_Text(title), t.Value_Text(text)]
    with Database.open(db_name) as db:
        try:
            note = insert_note(db, timeout, params)
        except Err as e:
            if not is_code(e, "42P01"):
                raise
            create_notes_table(db)
            note = insert_note(db, timeout, params)
    return json_response(201, note, [("location", f"/notes/{note['id']}")])


def get_note(db_name, raw):
    nid = note_id(raw)
    with Database.open(db_name) as db:
        try:
            rs = db.query(SELECT_NOTE, [t.Value_Int64(nid)])
        except Err as e:
            if is_code(e, "42P01"):
                raise note_not_found()
            raise
    if not rs.rows:
        raise note_not_found()
    return json_response(200, row_to_object(rs.columns, rs.rows[0]))


def list_notes(db_name):
    notes = []
    with Database.open(db_name) as db:
        try:
            rs = db.query(LIST_NOTES, [])
            notes = [row_to_object(rs.columns, row) for row in rs.rows]
        except Err as e:
            if not is_code(e, "42P01"):
                raise
    return json_response(200, {"notes": notes})


def delete_note(db_name, raw):
    nid = note_id(raw)
    with Database.open(db_name) as db:
        try:
            n = db.execute(DELETE_NOTE, [t.Value_Int64(nid)])
        except Err as e:
            if not is_code(e, "42P01"):
                raise
            n = 0
    if n == 0:
        raise note_not_found()
    return Response(status=204, headers=[CT], body=b"")


# ---------------------------------------------------------------------------
# Routing

ALLOW = {
    "query": "POST",
    "health": "GET",
    "health_db": "GET",
    "config": "GET",
    "pool_stats": "GET",
    "notes": "GET, POST",
    "note": "GET, DELETE",
}
ROUTES = {
    "/query": "query",
    "/health": "health",
    "/health/db": "health_db",
    "/config": "config",
    "/pool/stats": "pool_stats",
    "/notes": "notes",
}


def route(path):
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    if path in ROUTES:
        return ROUTES[path], None
    if path.startswith("/notes/"):
        rest = path[len("/notes/") :]
        if rest and "/" not in rest:
            return "note", rest
    return None, None


def handle(req):
    return with_request_id(respond(req), req)


def with_request_id(resp, req):
    """Error bodies carry the host's request id (the `x-request-id` request header), so a
    client's report can be matched with the host's log."""
    if resp.status < 400:
        return resp
    rid = next((value for name, value in req.headers if name.lower() == "x-request-id"), None)
    try:
        body = json.loads(bytes(resp.body).decode("utf-8"))
    except ValueError:
        return resp
    if rid is None or not isinstance(body, dict):
        return resp
    body["request_id"] = rid
    return json_response(resp.status, body, [h for h in resp.headers if h != CT])


def respond(req):
    name, arg = route(req.path)
    if name is None:
        return error(404, "not found")
    method = req.method.upper()
    db_name, timeout = settings()
    try:
        match (method, name):
            case ("POST", "query"):
                return query(db_name, timeout, req)
            case ("GET", "health"):
                return json_response(200, {"status": "ok"})
            case ("GET", "health_db"):
                return health_db(db_name)
            case ("GET", "config"):
                return config(db_name)
            case ("GET", "pool_stats"):
                return pool_stats(db_name)
            case ("GET", "notes"):
                return list_notes(db_name)
            case ("POST", "notes"):
                return create_note(db_name, timeout, req)
            case ("GET", "note"):
                return get_note(db_name, arg)
            case ("DELETE", "note"):
                return delete_note(db_name, arg)
        return json_response(405, {"error": "method not allowed"}, [("allow", ALLOW[name])])
    except Reply as r:
        return r.response
    except Err as e:
        return db_error_response(e.value)
    except Exception as e:  # a bug: still answer in JSON
        return error(500, f"internal error: {type(e).__name__}: {e}")


class Handler(exports.Handler):
    def handle(self, req: Request) -> Response:
        return handle(req)
