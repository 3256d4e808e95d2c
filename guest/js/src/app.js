// tarn's sample guest: request handling, independent of the component
// bindings. `backend.open(name)` returns a database with query/execute/begin/
// health/poolStats/poolConfig; `begin` returns a transaction with
// query/execute/commit/rollback. Database calls throw `DbFailure` carrying the
// WIT `error` variant ({tag, val}). Mirrors guest/rust/src/app.rs.

import { JFloat, JNum, JsonError, parse, stringify } from './json.js';

export class DbFailure extends Error {
  constructor(err) {
    super(err && err.tag ? `${err.tag}` : 'database error');
    this.err = err;
  }
}

export const DEFAULT_DATABASE = 'default';
export const DEFAULT_STATEMENT_TIMEOUT_MS = 5000;

/** Settings from the environment (a Map or object of name → value). */
export function settingsFromEnv(get) {
  const db = (get('TARN_DATABASE') ?? '').trim();
  const raw = (get('QUERY_STATEMENT_TIMEOUT_MS') ?? '').trim();
  let timeout = DEFAULT_STATEMENT_TIMEOUT_MS;
  if (/^\+?\d+$/.test(raw) && Number(raw) <= 0xffffffff) timeout = Number(raw);
  return {
    database: db === '' ? DEFAULT_DATABASE : db,
    statementTimeoutMs: timeout === 0 ? undefined : timeout,
  };
}

const CT = ['content-type', 'application/json'];
const ENC = new TextEncoder();

export function jsonResponse(status, body, headers = []) {
  return { status, headers: [CT, ...headers], body: ENC.encode(stringify(body)) };
}

const error = (status, message) => jsonResponse(status, { error: message });
const badRequest = (message) => error(400, message);

/** A response thrown out of a handler. */
class Reply {
  constructor(response) {
    this.response = response;
  }
}
const reject = (resp) => {
  throw new Reply(resp);
};

// ---------------------------------------------------------------------------
// Routing

const ALLOW = {
  query: 'POST',
  health: 'GET',
  healthDb: 'GET',
  config: 'GET',
  poolStats: 'GET',
  notes: 'GET, POST',
  note: 'GET, DELETE',
};

function route(path) {
  if (path.length > 1 && path.endsWith('/')) path = path.slice(0, -1);
  switch (path) {
    case '/query':
      return ['query'];
    case '/health':
      return ['health'];
    case '/health/db':
      return ['healthDb'];
    case '/config':
      return ['config'];
    case '/pool/stats':
      return ['poolStats'];
    case '/notes':
      return ['notes'];
  }
  if (path.startsWith('/notes/')) {
    const id = path.slice('/notes/'.length);
    if (id !== '' && !id.includes('/')) return ['note', id];
  }
  return null;
}

export function handle(backend, settings, req) {
  return withRequestId(respond(backend, settings, req), req);
}

// Error bodies carry the host's request id (the `x-request-id` request header), so a
// client's report can be matched with the host's log.
function withRequestId(resp, req) {
  if (resp.status < 400) return resp;
  const id = req.headers.find(([name]) => name.toLowerCase() === 'x-request-id');
  if (!id) return resp;
  let body;
  try {
    body = parse(DEC.decode(resp.body));
  } catch {
    return resp;
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return resp;
  body.request_id = id[1];
  return { ...resp, body: ENC.encode(stringify(body)) };
}

function respond(backend, settings, req) {
  const r = route(req.path);
  if (!r) return error(404, 'not found');
  const [name, arg] = r;
  const method = req.method.toUpperCase();
  try {
    switch (`${method} ${name}`) {
      case 'POST query':
        return query(backend, settings, req);
      case 'GET health':
        return jsonResponse(200, { status: 'ok' });
      case 'GET healthDb':
        return healthDb(backend, settings);
      case 'GET config':
        return config(backend, settings);
      case 'GET poolStats':
        return poolStats(backend, settings);
      case 'GET notes':
        return listNotes(backend, settings);
      case 'POST notes':
        return createNote(backend, settings, req);
      case 'GET note':
        return getNote(backend, settings, arg);
      case 'DELETE note':
        return deleteNote(backend, settings, arg);
    }
    return jsonResponse(405, { error: 'method not allowed' }, [['allow', ALLOW[name]]]);
  } catch (e) {
    if (e instanceof Reply) return e.response;
    if (e instanceof DbFailure) return dbErrorResponse(e.err);
    return jsonResponse(500, { error: `internal error: ${e && e.message ? e.message : e}` });
  }
}

// ---------------------------------------------------------------------------
// Errors

export function errorMessage(err) {
  switch (err.tag) {
    case 'query-failed':
      return err.val.message;
    case 'pool-timeout':
      return 'timed out waiting for a database connection';
    default:
      return String(err.val);
  }
}

const STATUS = {
  'query-failed': 400,
  'pool-timeout': 503,
  'connection-failed': 503,
  'bad-parameter': 400,
  'value-conversion': 400,
  'not-allowed': 403,
  'too-large': 400,
  timeout: 504,
};

export function dbErrorResponse(err) {
  const body = { error: errorMessage(err) };
  const headers = [];
  if (err.tag === 'query-failed') {
    const d = err.val;
    body.code = d.code;
    body.severity = d.severity;
    if (d.detail != null) body.detail = d.detail;
    if (d.hint != null) body.hint = d.hint;
  } else if (err.tag === 'pool-timeout') {
    const p = err.val;
    body.pool_size = p.poolSize;
    body.max_overflow = p.maxOverflow;
    body.checked_out = p.checkedOut;
    body.waiting = p.waiting;
    body.waited_ms = p.waitedMs;
    headers.push(['retry-after', '1']);
  }
  body.kind = err.tag;
  return jsonResponse(STATUS[err.tag] ?? 500, body, headers);
}

// ---------------------------------------------------------------------------
// Bodies and values

const DEC = new TextDecoder('utf-8', { fatal: true });

function jsonObject(req) {
  let v;
  try {
    v = parse(DEC.decode(req.body));
  } catch (e) {
    reject(badRequest(`invalid JSON body: ${e.message}`));
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof JNum) {
    reject(badRequest('request body must be a JSON object'));
  }
  return v;
}

function stringField(obj, key) {
  if (!Object.hasOwn(obj, key)) reject(badRequest(`missing \`${key}\``));
  const v = obj[key];
  if (typeof v !== 'string') reject(badRequest(`\`${key}\` must be a string`));
  return v;
}

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const U64_MAX = 2n ** 64n - 1n;

/** JSON parameter → `value`. */
export function paramFromJson(v) {
  if (v === null) return { tag: 'null' };
  if (typeof v === 'boolean') return { tag: 'boolean', val: v };
  if (typeof v === 'string') return { tag: 'text', val: v };
  if (v instanceof JNum) {
    if (v.isInteger) {
      const n = BigInt(v.text);
      if (n >= I64_MIN && n <= I64_MAX) return { tag: 'int64', val: n };
      // Above i64 up to u64: exact numeric (as the Rust guest, whose JSON
      // parser keeps integers up to u64::MAX); beyond that: float64.
      if (n > I64_MAX && n <= U64_MAX) return { tag: 'numeric', val: n.toString() };
    }
    return { tag: 'float64', val: v.toNumber() };
  }
  return { tag: 'json', val: stringify(v) };
}

function floatJson(f) {
  if (Number.isNaN(f)) return 'NaN';
  if (f === Infinity) return 'Infinity';
  if (f === -Infinity) return '-Infinity';
  return new JFloat(f);
}

/** The shortest decimal that rounds to the same f32. */
function shortestF32(f) {
  if (!Number.isFinite(f)) return f;
  for (let p = 1; p <= 9; p++) {
    const n = Number(f.toPrecision(p));
    if (Math.fround(n) === f) return n;
  }
  return f;
}

const HEX = '0123456789abcdef';
const pad = (n, w) => String(n).padStart(w, '0');

export function formatDate(d) {
  const y = d.year < 0 ? `-${pad(-d.year, 4)}` : pad(d.year, 4);
  return `${y}-${pad(d.month, 2)}-${pad(d.day, 2)}`;
}

export function formatTime(t) {
  const s = `${pad(t.hour, 2)}:${pad(t.minute, 2)}:${pad(t.second, 2)}`;
  return t.microsecond === 0 ? s : `${s}.${pad(t.microsecond, 6)}`;
}

const formatTimestamp = (ts) => `${formatDate(ts.date)}T${formatTime(ts.time)}`;

/** Result `value` → JSON. */
export function valueToJson(v) {
  switch (v.tag) {
    case 'null':
      return null;
    case 'boolean':
    case 'int16':
    case 'int32':
    case 'int64':
    case 'text':
    case 'uuid':
    case 'numeric':
      return v.val;
    case 'float32':
      return floatJson(shortestF32(v.val));
    case 'float64':
      return floatJson(v.val);
    case 'bytes': {
      let s = '\\x';
      for (const b of v.val) s += HEX[b >> 4] + HEX[b & 15];
      return s;
    }
    case 'json':
      try {
        return parse(v.val);
      } catch {
        return v.val;
      }
    case 'date':
      return formatDate(v.val);
    case 'time':
      return formatTime(v.val);
    case 'timestamp':
      return formatTimestamp(v.val);
    case 'timestamptz':
      return `${formatTimestamp(v.val)}Z`;
  }
  throw new Error(`unknown value tag ${v.tag}`);
}

function rowToObject(columns, row) {
  const obj = {};
  columns.forEach((c, i) => {
    obj[c.name] = valueToJson(row[i]);
  });
  return obj;
}

// ---------------------------------------------------------------------------
// Seed endpoints

function query(backend, settings, req) {
  const body = jsonObject(req);
  const sql = stringField(body, 'sql');
  if (sql.trim() === '') reject(badRequest('`sql` must not be empty'));
  let params = [];
  const p = body.params;
  if (p !== undefined && p !== null) {
    if (!Array.isArray(p)) reject(badRequest('`params` must be an array'));
    params = p.map(paramFromJson);
  }
  const db = backend.open(settings.database);
  const tx = db.begin({
    isolation: 'read-committed',
    readOnly: true,
    statementTimeoutMs: settings.statementTimeoutMs,
  });
  let rs;
  try {
    rs = tx.query(sql, params);
  } finally {
    try {
      tx.rollback(); // read only: nothing to commit
    } catch {
      // The answer stands; the host discards the connection.
    }
  }
  return jsonResponse(200, {
    columns: rs.columns.map((c) => c.name),
    rows: rs.rows.map((row) => row.map(valueToJson)),
    row_count: rs.rows.length,
  });
}

function healthDb(backend, settings) {
  let h;
  try {
    h = backend.open(settings.database).health();
  } catch (e) {
    if (!(e instanceof DbFailure)) throw e;
    return jsonResponse(503, {
      database_healthy: false,
      status: 'disconnected',
      error: errorMessage(e.err),
    });
  }
  if (h.healthy) return jsonResponse(200, { database_healthy: true, status: 'connected' });
  const reason = h.error != null && h.error.trim() !== '' ? h.error : 'database unreachable';
  return jsonResponse(503, { database_healthy: false, status: 'disconnected', error: reason });
}

function config(backend, settings) {
  const c = backend.open(settings.database).poolConfig();
  return jsonResponse(200, {
    name: c.name,
    url: c.url,
    pool_size: c.poolSize,
    max_overflow: c.maxOverflow,
    pool_timeout: new JFloat(c.poolTimeoutSeconds),
    pool_recycle: c.poolRecycleSeconds,
    pool_pre_ping: c.poolPrePing,
    lazy_init: c.lazyInit,
  });
}

function poolStats(backend, settings) {
  const s = backend.open(settings.database).poolStats();
  return jsonResponse(200, {
    size: s.size,
    checked_in: s.checkedIn,
    checked_out: s.checkedOut,
    overflow: s.overflow,
    total: s.total,
    waiting: s.waiting,
  });
}

// ---------------------------------------------------------------------------
// Notes

export const CREATE_NOTES =
  'CREATE TABLE IF NOT EXISTS notes (id bigserial primary key, ' +
  'title text not null, body text not null, created_at timestamptz not null default now())';
export const INSERT_NOTE =
  'INSERT INTO notes (title, body) VALUES ($1, $2) RETURNING id, title, body, created_at';
export const SELECT_NOTE = 'SELECT id, title, body, created_at FROM notes WHERE id = $1';
export const LIST_NOTES =
  'SELECT id, title, body, created_at FROM notes ORDER BY id DESC LIMIT 50';
export const DELETE_NOTE = 'DELETE FROM notes WHERE id = $1';
const MAX_TITLE_CHARS = 200;

const isCode = (e, code) =>
  e instanceof DbFailure && e.err.tag === 'query-failed' && e.err.val.code === code;

const noteNotFound = () => reject(error(404, 'note not found'));

function noteId(raw) {
  if (/^[+-]?\d+$/.test(raw)) {
    const n = BigInt(raw);
    if (n >= I64_MIN && n <= I64_MAX) return n;
  }
  return reject(jsonResponse(400, { error: 'note id must be a 64-bit integer', id: raw }));
}

function createNote(backend, settings, req) {
  const body = jsonObject(req);
  const title = stringField(body, 'title');
  const text = stringField(body, 'body');
  const n = [...title].length;
  if (n === 0 || n > MAX_TITLE_CHARS) {
    reject(badRequest(`\`title\` must be 1 to ${MAX_TITLE_CHARS} characters`));
  }
  const params = [
    { tag: 'text', val: title },
    { tag: 'text', val: text },
  ];
  const db = backend.open(settings.database);
  let note;
  try {
    note = insertNote(db, settings, params);
  } catch (e) {
    if (!isCode(e, '42P01')) throw e;
    createNotesTable(db);
    note = insertNote(db, settings, params);
  }
  return jsonResponse(201, note, [['location', `/notes/${stringify(note.id)}`]]);
}

function insertNote(db, settings, params) {
  const tx = db.begin({
    isolation: 'read-committed',
    readOnly: false,
    statementTimeoutMs: settings.statementTimeoutMs,
  });
  let rs;
  try {
    rs = tx.query(INSERT_NOTE, params);
  } catch (e) {
    try {
      tx.rollback();
    } catch {
      // reported below
    }
    throw e;
  }
  tx.commit();
  if (rs.rows.length === 0) {
    throw new DbFailure({ tag: 'value-conversion', val: 'INSERT ... RETURNING returned no row' });
  }
  return rowToObject(rs.columns, rs.rows[0]);
}

function createNotesTable(db) {
  try {
    db.execute(CREATE_NOTES, []);
  } catch (e) {
    // Concurrent CREATE TABLE IF NOT EXISTS: the table is there now.
    if (!isCode(e, '23505') && !isCode(e, '42P07')) throw e;
  }
}

function getNote(backend, settings, raw) {
  const id = noteId(raw);
  const db = backend.open(settings.database);
  let rs;
  try {
    rs = db.query(SELECT_NOTE, [{ tag: 'int64', val: id }]);
  } catch (e) {
    if (isCode(e, '42P01')) noteNotFound();
    throw e;
  }
  if (rs.rows.length === 0) noteNotFound();
  return jsonResponse(200, rowToObject(rs.columns, rs.rows[0]));
}

function listNotes(backend, settings) {
  const db = backend.open(settings.database);
  let notes = [];
  try {
    const rs = db.query(LIST_NOTES, []);
    notes = rs.rows.map((row) => rowToObject(rs.columns, row));
  } catch (e) {
    if (!isCode(e, '42P01')) throw e;
  }
  return jsonResponse(200, { notes });
}

function deleteNote(backend, settings, raw) {
  const id = noteId(raw);
  const db = backend.open(settings.database);
  let n = 0n;
  try {
    n = db.execute(DELETE_NOTE, [{ tag: 'int64', val: id }]);
  } catch (e) {
    if (!isCode(e, '42P01')) throw e;
  }
  if (BigInt(n) === 0n) noteNotFound();
  return { status: 204, headers: [CT], body: new Uint8Array(0) };
}
