// Runs built guest components (any language) through the same request
// scenarios on Node, via jco's transpiler, with a scripted fake of
// `tarn:postgres/database` and a fresh instance per request (as tarn does).
// It checks statuses, headers, exact response JSON (number text included:
// 30.0 stays 30.0) and the database calls each guest makes.
//
//   node test/components.mjs ../../target/wasm32-wasip2/release/tarn_guest.wasm build/guest.wasm ...
//
// This checks the components' ABI and behaviour, not the real host.

import { setFlagsFromString } from 'node:v8';
import { transpile } from '@bytecodealliance/jco';
import * as wasi from '@bytecodealliance/preview2-shim';
import { mkdtemp, readFile, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { JNum, parse, stringify } from '../src/json.js';

// componentize-py's CPython uses extended constant expressions, which Node 20's
// V8 has behind a flag (on by default in later versions).
setFlagsFromString('--experimental-wasm-extended-const');

// ---------------------------------------------------------------------------
// The fake database (host side)

let state;

function next() {
  if (state.replies.length === 0) throw new Error('unexpected database call: no reply scripted');
  const r = state.replies.shift();
  if (r && r.fail) throw { payload: r.fail };
  return r;
}

class Transaction {
  query(sql, params) {
    state.calls.push(['txQuery', sql, params]);
    return next();
  }
  execute(sql, params) {
    state.calls.push(['txExecute', sql, params]);
    return next();
  }
  static commit(_tx) {
    state.calls.push(['commit']);
  }
  static rollback(_tx) {
    state.calls.push(['rollback']);
  }
}

class Database {
  static open(name) {
    state.calls.push(['open', name]);
    if (state.openError) throw { payload: state.openError };
    return new Database();
  }
  query(sql, params) {
    state.calls.push(['query', sql, params]);
    return next();
  }
  execute(sql, params) {
    state.calls.push(['execute', sql, params]);
    return next();
  }
  begin(options) {
    state.calls.push(['begin', options]);
    return new Transaction();
  }
  health() {
    state.calls.push(['health']);
    return state.health;
  }
  poolStats() {
    state.calls.push(['poolStats']);
    return { size: 5, checkedIn: 3, checkedOut: 2, overflow: 0, total: 5, waiting: 1 };
  }
  poolConfig() {
    state.calls.push(['poolConfig']);
    return {
      name: 'default',
      url: 'postgres://app:***@127.0.0.1:5432/app',
      poolSize: 5,
      maxOverflow: 10,
      poolTimeoutSeconds: 30,
      poolRecycleSeconds: 3600n,
      poolPrePing: true,
      lazyInit: false,
    };
  }
}

// ---------------------------------------------------------------------------
// Scenarios

const col = (name, dataType, typeName) => ({ name, dataType, typeName });
const ts = (y, mo, d, h, mi, s, us) => ({
  date: { year: y, month: mo, day: d },
  time: { hour: h, minute: mi, second: s, microsecond: us },
});
const qf = (code, message, detail, hint) => ({
  fail: { tag: 'query-failed', val: { code, severity: 'ERROR', message, detail, hint } },
});
const noteRows = (notes) => ({
  columns: [
    col('id', 'int64', 'int8'),
    col('title', 'text', 'text'),
    col('body', 'text', 'text'),
    col('created_at', 'timestamptz', 'timestamptz'),
  ],
  rows: notes.map(([id, t, b]) => [
    { tag: 'int64', val: BigInt(id) },
    { tag: 'text', val: t },
    { tag: 'text', val: b },
    { tag: 'timestamptz', val: ts(2025, 1, 2, 3, 4, 5, 600) },
  ]),
});
const RO = { isolation: 'read-committed', readOnly: true, statementTimeoutMs: 5000 };
const RW = { isolation: 'read-committed', readOnly: false, statementTimeoutMs: 5000 };
const CREATE_NOTES =
  'CREATE TABLE IF NOT EXISTS notes (id bigserial primary key, title text not null, ' +
  'body text not null, created_at timestamptz not null default now())';
const INSERT_NOTE =
  'INSERT INTO notes (title, body) VALUES ($1, $2) RETURNING id, title, body, created_at';
const SELECT_NOTE = 'SELECT id, title, body, created_at FROM notes WHERE id = $1';
const LIST_NOTES = 'SELECT id, title, body, created_at FROM notes ORDER BY id DESC LIMIT 50';
const DELETE_NOTE = 'DELETE FROM notes WHERE id = $1';
const text = (val) => ({ tag: 'text', val });
const int64 = (val) => ({ tag: 'int64', val: BigInt(val) });
const ERROR_ONLY = Symbol('a body {"error": "<any string>"}');

const ALL_TYPES = {
  columns: [
    col('i2', 'int16', 'int2'),
    col('i4', 'int32', 'int4'),
    col('i8', 'int64', 'int8'),
    col('f4', 'float32', 'float4'),
    col('f8', 'float64', 'float8'),
    col('whole', 'float64', 'float8'),
    col('nan', 'float64', 'float8'),
    col('inf', 'float32', 'float4'),
    col('ninf', 'float64', 'float8'),
    col('b', 'boolean', 'bool'),
    col('nul', 'text', 'text'),
    col('t', 'text', 'text'),
    col('bin', 'bytes', 'bytea'),
    col('j', 'json', 'jsonb'),
    col('u', 'uuid', 'uuid'),
    col('d', 'date', 'date'),
    col('tm', 'time', 'time'),
    col('tmus', 'time', 'time'),
    col('ts', 'timestamp', 'timestamp'),
    col('tz', 'timestamptz', 'timestamptz'),
    col('n', 'numeric', 'numeric'),
  ],
  rows: [
    [
      { tag: 'int16', val: -3 },
      { tag: 'int32', val: 12 },
      { tag: 'int64', val: 9007199254740993n },
      { tag: 'float32', val: Math.fround(0.1) },
      { tag: 'float64', val: 1.5 },
      { tag: 'float64', val: 2 },
      { tag: 'float64', val: NaN },
      { tag: 'float32', val: Infinity },
      { tag: 'float64', val: -Infinity },
      { tag: 'boolean', val: true },
      { tag: 'null' },
      { tag: 'text', val: 'héllo "q"\n' },
      { tag: 'bytes', val: new Uint8Array([0x0a, 0x0b, 0xff]) },
      { tag: 'json', val: '{"a": [1, 2.5, null, "x"]}' },
      { tag: 'uuid', val: 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11' },
      { tag: 'date', val: { year: 2024, month: 2, day: 29 } },
      { tag: 'time', val: { hour: 7, minute: 8, second: 9, microsecond: 0 } },
      { tag: 'time', val: { hour: 23, minute: 0, second: 1, microsecond: 500000 } },
      { tag: 'timestamp', val: ts(2024, 12, 31, 23, 59, 59, 123) },
      { tag: 'timestamptz', val: ts(1999, 1, 1, 0, 0, 0, 0) },
      { tag: 'numeric', val: '12.50' },
    ],
    Array.from({ length: 21 }, () => ({ tag: 'null' })),
  ],
};
const ALL_TYPES_JSON =
  '{"columns":["i2","i4","i8","f4","f8","whole","nan","inf","ninf","b","nul","t","bin","j","u","d","tm","tmus","ts","tz","n"],' +
  '"rows":[[-3,12,9007199254740993,0.1,1.5,2.0,"NaN","Infinity","-Infinity",true,null,"héllo \\"q\\"\\n","\\\\x0a0bff",' +
  '{"a":[1,2.5,null,"x"]},"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","2024-02-29","07:08:09","23:00:01.500000",' +
  '"2024-12-31T23:59:59.000123","1999-01-01T00:00:00Z","12.50"],' +
  '[null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null]],"row_count":2}';

const SCENARIOS = [
  { name: 'health', req: ['GET', '/health'], status: 200, body: '{"status":"ok"}', calls: [] },
  { name: 'health trailing slash', req: ['GET', '/health/'], status: 200, body: '{"status":"ok"}' },
  { name: 'unknown path', req: ['GET', '/nope'], status: 404, body: '{"error":"not found"}', calls: [] },
  { name: 'notes subpath', req: ['GET', '/notes/1/2'], status: 404, body: '{"error":"not found"}' },
  {
    name: 'wrong method /query',
    req: ['GET', '/query'],
    status: 405,
    body: '{"error":"method not allowed"}',
    headers: { allow: 'POST' },
    calls: [],
  },
  { name: 'wrong method /notes', req: ['DELETE', '/notes'], status: 405, headers: { allow: 'GET, POST' } },
  { name: 'wrong method /notes/1', req: ['PUT', '/notes/1'], status: 405, headers: { allow: 'GET, DELETE' } },
  { name: 'wrong method /config', req: ['POST', '/config'], status: 405, headers: { allow: 'GET' } },
  {
    name: 'query: all value types and params',
    req: [
      'POST',
      '/query',
      '{"sql":"SELECT $1","params":[null,true,7,-8,2.5,"x",[1,"a"],{"k":null},18446744073709551615]}',
    ],
    replies: [ALL_TYPES],
    status: 200,
    body: ALL_TYPES_JSON,
    calls: [
      ['open', 'default'],
      ['begin', RO],
      [
        'txQuery',
        'SELECT $1',
        [
          { tag: 'null' },
          { tag: 'boolean', val: true },
          int64(7),
          int64(-8),
          { tag: 'float64', val: 2.5 },
          text('x'),
          { tag: 'json', val: '[1,"a"]' },
          { tag: 'json', val: '{"k":null}' },
          { tag: 'numeric', val: '18446744073709551615' },
        ],
      ],
      ['rollback'],
    ],
  },
  {
    name: 'query: integers past u64 are float64, -0 and exponents too',
    req: ['POST', '/query', '{"sql":"S","params":[184467440737095516160,-9223372036854775809,1e2,-1.5]}'],
    replies: [{ columns: [], rows: [] }],
    status: 200,
    calls: [
      ['open', 'default'],
      ['begin', RO],
      [
        'txQuery',
        'S',
        [
          { tag: 'float64', val: 184467440737095516160 },
          { tag: 'float64', val: -9223372036854775809 },
          { tag: 'float64', val: 100 },
          { tag: 'float64', val: -1.5 },
        ],
      ],
      ['rollback'],
    ],
  },
  {
    name: 'query: no params, empty result',
    req: ['POST', '/query', '{"sql":"SELECT 1 WHERE false"}'],
    replies: [{ columns: [col('x', 'int32', 'int4')], rows: [] }],
    status: 200,
    body: '{"columns":["x"],"rows":[],"row_count":0}',
    calls: [['open', 'default'], ['begin', RO], ['txQuery', 'SELECT 1 WHERE false', []], ['rollback']],
  },
  { name: 'query: bad JSON', req: ['POST', '/query', '{'], status: 400, body: ERROR_ONLY, calls: [] },
  { name: 'query: empty body', req: ['POST', '/query', ''], status: 400, body: ERROR_ONLY, calls: [] },
  {
    name: 'query: not an object',
    req: ['POST', '/query', '[1]'],
    status: 400,
    body: '{"error":"request body must be a JSON object"}',
  },
  { name: 'query: missing sql', req: ['POST', '/query', '{}'], status: 400, body: '{"error":"missing `sql`"}' },
  {
    name: 'query: sql not a string',
    req: ['POST', '/query', '{"sql":1}'],
    status: 400,
    body: '{"error":"`sql` must be a string"}',
  },
  {
    name: 'query: blank sql',
    req: ['POST', '/query', '{"sql":"  "}'],
    status: 400,
    body: '{"error":"`sql` must not be empty"}',
  },
  {
    name: 'query: params not an array',
    req: ['POST', '/query', '{"sql":"SELECT 1","params":{"a":1}}'],
    status: 400,
    body: '{"error":"`params` must be an array"}',
    calls: [],
  },
  {
    name: 'query: query-failed (read-only)',
    req: ['POST', '/query', '{"sql":"INSERT INTO t VALUES (1)"}'],
    replies: [qf('25006', 'cannot execute INSERT in a read-only transaction', 'some detail', 'a hint')],
    status: 400,
    body:
      '{"error":"cannot execute INSERT in a read-only transaction","code":"25006","severity":"ERROR",' +
      '"detail":"some detail","hint":"a hint","kind":"query-failed"}',
    calls: [['open', 'default'], ['begin', RO], ['txQuery', 'INSERT INTO t VALUES (1)', []], ['rollback']],
  },
  {
    name: 'query: pool-timeout',
    req: ['POST', '/query', '{"sql":"SELECT 1"}'],
    replies: [
      {
        fail: {
          tag: 'pool-timeout',
          val: { poolSize: 5, maxOverflow: 10, checkedOut: 15, waiting: 4, waitedMs: 30000n },
        },
      },
    ],
    status: 503,
    headers: { 'retry-after': '1' },
    body:
      '{"error":"timed out waiting for a database connection","pool_size":5,"max_overflow":10,' +
      '"checked_out":15,"waiting":4,"waited_ms":30000,"kind":"pool-timeout"}',
  },
  ...[
    ['connection-failed', 503],
    ['timeout', 504],
    ['not-allowed', 403],
    ['too-large', 400],
    ['bad-parameter', 400],
    ['value-conversion', 400],
  ].map(([tag, status]) => ({
    name: `query: ${tag}`,
    req: ['POST', '/query', '{"sql":"SELECT 1"}'],
    replies: [{ fail: { tag, val: `msg ${tag}` } }],
    status,
    headers: { 'retry-after': undefined },
    body: `{"error":"msg ${tag}","kind":"${tag}"}`,
  })),
  {
    name: 'query: database not granted',
    req: ['POST', '/query', '{"sql":"SELECT 1"}'],
    openError: { tag: 'not-allowed', val: 'not granted' },
    status: 403,
    body: '{"error":"not granted","kind":"not-allowed"}',
  },
  {
    name: 'env: TARN_DATABASE, QUERY_STATEMENT_TIMEOUT_MS',
    env: { TARN_DATABASE: 'analytics', QUERY_STATEMENT_TIMEOUT_MS: '250' },
    req: ['POST', '/query', '{"sql":"SELECT"}'],
    replies: [{ columns: [], rows: [] }],
    status: 200,
    body: '{"columns":[],"rows":[],"row_count":0}',
    calls: [['open', 'analytics'], ['begin', { ...RO, statementTimeoutMs: 250 }], ['txQuery', 'SELECT', []], ['rollback']],
  },
  {
    name: 'env: QUERY_STATEMENT_TIMEOUT_MS=0 means none',
    env: { QUERY_STATEMENT_TIMEOUT_MS: '0' },
    req: ['POST', '/query', '{"sql":"SELECT"}'],
    replies: [{ columns: [], rows: [] }],
    status: 200,
    calls: [['open', 'default'], ['begin', { ...RO, statementTimeoutMs: undefined }], ['txQuery', 'SELECT', []], ['rollback']],
  },
  {
    name: 'health/db connected',
    req: ['GET', '/health/db'],
    health: { healthy: true, status: 'connected', error: undefined },
    status: 200,
    body: '{"database_healthy":true,"status":"connected"}',
    calls: [['open', 'default'], ['health']],
  },
  {
    name: 'health/db disconnected',
    req: ['GET', '/health/db'],
    health: { healthy: false, status: 'disconnected', error: 'connection refused' },
    status: 503,
    body: '{"database_healthy":false,"status":"disconnected","error":"connection refused"}',
  },
  {
    name: 'health/db disconnected without reason',
    req: ['GET', '/health/db'],
    health: { healthy: false, status: 'disconnected', error: undefined },
    status: 503,
    body: '{"database_healthy":false,"status":"disconnected","error":"database unreachable"}',
  },
  {
    name: 'config',
    req: ['GET', '/config'],
    status: 200,
    body:
      '{"name":"default","url":"postgres://app:***@127.0.0.1:5432/app","pool_size":5,"max_overflow":10,' +
      '"pool_timeout":30.0,"pool_recycle":3600,"pool_pre_ping":true,"lazy_init":false}',
    calls: [['open', 'default'], ['poolConfig']],
  },
  {
    name: 'pool/stats',
    req: ['GET', '/pool/stats'],
    status: 200,
    body: '{"size":5,"checked_in":3,"checked_out":2,"overflow":0,"total":5,"waiting":1}',
    calls: [['open', 'default'], ['poolStats']],
  },
  {
    name: 'notes: create',
    req: ['POST', '/notes', '{"title":"t","body":"b"}'],
    replies: [noteRows([[7, 't', 'b']])],
    status: 201,
    headers: { location: '/notes/7' },
    body: '{"id":7,"title":"t","body":"b","created_at":"2025-01-02T03:04:05.000600Z"}',
    calls: [['open', 'default'], ['begin', RW], ['txQuery', INSERT_NOTE, [text('t'), text('b')]], ['commit']],
  },
  ...['42P07', '23505', null].map((code) => ({
    name: `notes: create table on 42P01 (CREATE gives ${code ?? 'ok'})`,
    req: ['POST', '/notes', '{"title":"t","body":"b"}'],
    replies: [qf('42P01', 'relation "notes" does not exist'), code ? qf(code, 'race') : 0n, noteRows([[1, 't', 'b']])],
    status: 201,
    calls: [
      ['open', 'default'],
      ['begin', RW],
      ['txQuery', INSERT_NOTE, [text('t'), text('b')]],
      ['rollback'],
      ['execute', CREATE_NOTES, []],
      ['begin', RW],
      ['txQuery', INSERT_NOTE, [text('t'), text('b')]],
      ['commit'],
    ],
  })),
  {
    name: 'notes: create retries once only',
    req: ['POST', '/notes', '{"title":"t","body":"b"}'],
    replies: [qf('42P01', 'no table'), 0n, qf('42P01', 'no table')],
    status: 400,
    body: '{"error":"no table","code":"42P01","severity":"ERROR","kind":"query-failed"}',
  },
  {
    name: 'notes: empty title',
    req: ['POST', '/notes', '{"title":"","body":"b"}'],
    status: 400,
    body: '{"error":"`title` must be 1 to 200 characters"}',
    calls: [],
  },
  {
    name: 'notes: 201-char title',
    req: ['POST', '/notes', `{"title":"${'x'.repeat(201)}","body":""}`],
    status: 400,
    body: '{"error":"`title` must be 1 to 200 characters"}',
  },
  {
    name: 'notes: 200 two-byte chars is fine',
    req: ['POST', '/notes', `{"title":"${'é'.repeat(200)}","body":""}`],
    replies: [noteRows([[2, 'é'.repeat(200), '']])],
    status: 201,
  },
  { name: 'notes: missing body', req: ['POST', '/notes', '{"title":"t"}'], status: 400, body: '{"error":"missing `body`"}' },
  {
    name: 'notes: body not a string',
    req: ['POST', '/notes', '{"title":"t","body":null}'],
    status: 400,
    body: '{"error":"`body` must be a string"}',
  },
  {
    name: 'notes: get',
    req: ['GET', '/notes/3'],
    replies: [noteRows([[3, 'a', 'b']])],
    status: 200,
    body: '{"id":3,"title":"a","body":"b","created_at":"2025-01-02T03:04:05.000600Z"}',
    calls: [['open', 'default'], ['query', SELECT_NOTE, [int64(3)]]],
  },
  {
    name: 'notes: get missing',
    req: ['GET', '/notes/4'],
    replies: [noteRows([])],
    status: 404,
    body: '{"error":"note not found"}',
  },
  { name: 'notes: get, no table', req: ['GET', '/notes/4'], replies: [qf('42P01', 'x')], status: 404 },
  {
    name: 'notes: get bad id',
    req: ['GET', '/notes/abc'],
    status: 400,
    body: '{"error":"note id must be a 64-bit integer","id":"abc"}',
    calls: [],
  },
  { name: 'notes: get id out of range', req: ['GET', '/notes/99999999999999999999'], status: 400, calls: [] },
  {
    name: 'notes: list',
    req: ['GET', '/notes'],
    replies: [noteRows([[2, 'b', 'y'], [1, 'a', 'x']])],
    status: 200,
    body:
      '{"notes":[{"id":2,"title":"b","body":"y","created_at":"2025-01-02T03:04:05.000600Z"},' +
      '{"id":1,"title":"a","body":"x","created_at":"2025-01-02T03:04:05.000600Z"}]}',
    calls: [['open', 'default'], ['query', LIST_NOTES, []]],
  },
  { name: 'notes: list, no table', req: ['GET', '/notes'], replies: [qf('42P01', 'x')], status: 200, body: '{"notes":[]}' },
  {
    name: 'notes: delete',
    req: ['DELETE', '/notes/5'],
    replies: [1n],
    status: 204,
    body: '',
    calls: [['open', 'default'], ['execute', DELETE_NOTE, [int64(5)]]],
  },
  { name: 'notes: delete missing', req: ['DELETE', '/notes/5'], replies: [0n], status: 404, body: '{"error":"note not found"}' },
  { name: 'notes: delete bad id', req: ['DELETE', '/notes/x'], status: 400, calls: [] },
];

// ---------------------------------------------------------------------------
// Running

/** JSON text with object keys sorted and numbers kept as written. */
function canonical(v) {
  if (v === null || typeof v !== 'object' || v instanceof JNum) return stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
}

const camel = (s) => s.replace(/-([a-z])/g, (_, c) => c.toUpperCase());

async function load(path) {
  const bytes = await readFile(path);
  const { files, imports } = await transpile(bytes, {
    name: 'guest',
    instantiation: 'async',
    noTypescript: true,
    quiet: true,
  });
  const dir = await mkdtemp(join(tmpdir(), 'tarn-guest-'));
  for (const [name, data] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), data);
  }
  const mod = await import(pathToFileURL(join(dir, 'guest.js')).href);
  const cache = new Map();
  const getCoreModule = (name) => {
    if (!cache.has(name)) cache.set(name, WebAssembly.compile(files[name]));
    return cache.get(name);
  };
  return { mod, imports, getCoreModule };
}

async function instantiate({ mod, imports, getCoreModule }, env) {
  const obj = {};
  for (const name of imports) {
    const [pkg, iface] = name.split('/');
    if (name === 'tarn:postgres/database') obj[name] = { Database, Transaction };
    else if (name === 'tarn:postgres/types') obj[name] = {};
    else if (name === 'wasi:cli/environment') {
      obj[name] = {
        getEnvironment: () => Object.entries(env),
        getArguments: () => [],
        initialCwd: () => undefined,
      };
    } else if (pkg.startsWith('wasi:')) {
      const shim = wasi[pkg.slice(5)]?.[camel(iface)];
      if (!shim) throw new Error(`no shim for ${name}`);
      obj[name] = shim;
    } else throw new Error(`unexpected import ${name}`);
  }
  return mod.instantiate(getCoreModule, obj);
}

function check(s, resp) {
  const problems = [];
  const body = new TextDecoder().decode(resp.body);
  if (resp.status !== s.status) problems.push(`status ${resp.status}, want ${s.status}`);
  const headers = Object.fromEntries(resp.headers.map(([k, v]) => [k.toLowerCase(), v]));
  if (headers['content-type'] !== 'application/json') {
    problems.push(`content-type ${headers['content-type']}`);
  }
  for (const [k, v] of Object.entries(s.headers ?? {})) {
    if (headers[k] !== v) problems.push(`header ${k}: ${headers[k]}, want ${v}`);
  }
  if (s.body === ERROR_ONLY) {
    let ok = false;
    try {
      const v = JSON.parse(body);
      ok = Object.keys(v).join() === 'error' && typeof v.error === 'string' && v.error !== '';
    } catch {}
    if (!ok) problems.push(`body ${body}, want {"error": "..."}`);
  } else if (s.body === '') {
    if (body !== '') problems.push(`body ${body}, want empty`);
  } else if (s.body !== undefined) {
    let got;
    try {
      got = canonical(parse(body));
    } catch (e) {
      got = `<not JSON: ${e.message}> ${body}`;
    }
    const want = canonical(parse(s.body));
    if (got !== want) problems.push(`body\n      got  ${got}\n      want ${want}`);
  } else {
    try {
      parse(body);
    } catch (e) {
      problems.push(`body is not JSON: ${body}`);
    }
  }
  if (s.calls !== undefined) {
    const got = stringify(state.calls);
    const want = stringify(s.calls);
    if (got !== want) problems.push(`calls\n      got  ${got}\n      want ${want}`);
  }
  return problems;
}

let failed = 0;
let passed = 0;
for (const path of process.argv.slice(2)) {
  const t0 = performance.now();
  const loaded = await load(resolve(path));
  console.log(`# ${path} (transpiled in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  for (const s of SCENARIOS) {
    state = {
      calls: [],
      replies: [...(s.replies ?? [])],
      health: s.health,
      openError: s.openError,
    };
    const [method, p, body = ''] = s.req;
    let problems;
    try {
      const inst = await instantiate(loaded, s.env ?? {});
      const handler = inst.handler ?? inst['tarn:postgres/handler@0.1.0'];
      const resp = handler.handle({
        method,
        path: p,
        query: '',
        headers: [['content-type', 'application/json']],
        body: new TextEncoder().encode(body),
      });
      problems = check(s, resp);
      if (state.replies.length) problems.push(`${state.replies.length} scripted replies unused`);
    } catch (e) {
      problems = [`threw ${e && e.stack ? e.stack : e}`];
    }
    if (problems.length) {
      failed++;
      console.log(`not ok - ${s.name}\n    ${problems.join('\n    ')}`);
    } else {
      passed++;
      if (process.env.VERBOSE) console.log(`ok - ${s.name}`);
    }
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
