// Node unit tests of src/app.js against a scripted fake backend:
//   node --test test/app.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as app from '../src/app.js';

const { DbFailure } = app;

function fake(replies = [], opts = {}) {
  const calls = [];
  const next = () => {
    if (replies.length === 0) throw new Error('unexpected database call');
    const r = replies.shift();
    if (r && r.fail) throw new DbFailure(r.fail);
    return r;
  };
  const tx = {
    query: (sql, params) => (calls.push(['txQuery', sql, params]), next()),
    execute: (sql, params) => (calls.push(['txExecute', sql, params]), next()),
    commit: () => calls.push(['commit']),
    rollback: () => calls.push(['rollback']),
  };
  const db = {
    query: (sql, params) => (calls.push(['query', sql, params]), next()),
    execute: (sql, params) => (calls.push(['execute', sql, params]), next()),
    begin: (o) => (calls.push(['begin', o]), tx),
    health: () => opts.health,
    poolStats: () => ({ size: 5, checkedIn: 3, checkedOut: 2, overflow: 0, total: 5, waiting: 1 }),
    poolConfig: () => ({
      name: 'default',
      url: 'postgres://app:***@127.0.0.1:5432/app',
      poolSize: 5,
      maxOverflow: 10,
      poolTimeoutSeconds: 30,
      poolRecycleSeconds: 3600n,
      poolPrePing: true,
      lazyInit: false,
    }),
  };
  return {
    calls,
    open(name) {
      calls.push(['open', name]);
      if (opts.openError) throw new DbFailure(opts.openError);
      return db;
    },
  };
}

const settings = { database: 'default', statementTimeoutMs: 5000 };
const req = (method, path, body = '') => ({
  method,
  path,
  query: '',
  headers: [],
  body: new TextEncoder().encode(body),
});
const run = (b, r) => app.handle(b, settings, r);
const text = (resp) => new TextDecoder().decode(resp.body);
const json = (resp) => JSON.parse(text(resp));
const header = (resp, n) => resp.headers.find(([k]) => k === n)?.[1];
const ts = (y, mo, d, h, mi, s, us) => ({
  date: { year: y, month: mo, day: d },
  time: { hour: h, minute: mi, second: s, microsecond: us },
});
const noteRows = (notes) => ({
  columns: ['id', 'title', 'body', 'created_at'].map((name) => ({ name })),
  rows: notes.map(([id, t, b]) => [
    { tag: 'int64', val: BigInt(id) },
    { tag: 'text', val: t },
    { tag: 'text', val: b },
    { tag: 'timestamptz', val: ts(2025, 1, 2, 3, 4, 5, 600) },
  ]),
});
const qf = (code, message = 'x') => ({
  fail: { tag: 'query-failed', val: { code, severity: 'ERROR', message } },
});

test('health, 404, 405', () => {
  const b = fake();
  let r = run(b, req('GET', '/health'));
  assert.equal(r.status, 200);
  assert.equal(text(r), '{"status":"ok"}');
  assert.equal(header(r, 'content-type'), 'application/json');
  r = run(b, req('GET', '/nope'));
  assert.equal(r.status, 404);
  assert.deepEqual(json(r), { error: 'not found' });
  r = run(b, req('GET', '/query'));
  assert.equal(r.status, 405);
  assert.equal(header(r, 'allow'), 'POST');
  r = run(b, req('PUT', '/notes/1'));
  assert.equal(header(r, 'allow'), 'GET, DELETE');
  assert.deepEqual(b.calls, []);
});

test('query maps params and values exactly', () => {
  const rs = {
    columns: ['i', 'big', 'f', 'r', 'nan', 'bin', 'j', 'd', 'tm', 'tz', 'n'].map((name) => ({ name })),
    rows: [
      [
        { tag: 'int32', val: 12 },
        { tag: 'int64', val: 9007199254740993n },
        { tag: 'float64', val: 1 },
        { tag: 'float32', val: Math.fround(0.1) },
        { tag: 'float64', val: NaN },
        { tag: 'bytes', val: new Uint8Array([10, 11, 255]) },
        { tag: 'json', val: '{"a":[1,12345678901234567890]}' },
        { tag: 'date', val: { year: -43, month: 3, day: 15 } },
        { tag: 'time', val: { hour: 7, minute: 8, second: 9, microsecond: 5 } },
        { tag: 'timestamptz', val: ts(1999, 1, 1, 0, 0, 0, 0) },
        { tag: 'numeric', val: '12.50' },
      ],
    ],
  };
  const b = fake([rs]);
  const r = run(
    b,
    req('POST', '/query', '{"sql":"SELECT $1","params":[null,true,7,1.0,"x",[1,"a"],18446744073709551615]}'),
  );
  assert.equal(r.status, 200, text(r));
  assert.equal(
    text(r),
    '{"columns":["i","big","f","r","nan","bin","j","d","tm","tz","n"],' +
      '"rows":[[12,9007199254740993,1.0,0.1,"NaN","\\\\x0a0bff",{"a":[1,12345678901234567890]},' +
      '"-0043-03-15","07:08:09.000005","1999-01-01T00:00:00Z","12.50"]],"row_count":1}',
  );
  assert.deepEqual(b.calls[1], [
    'begin',
    { isolation: 'read-committed', readOnly: true, statementTimeoutMs: 5000 },
  ]);
  assert.deepEqual(b.calls[2][2], [
    { tag: 'null' },
    { tag: 'boolean', val: true },
    { tag: 'int64', val: 7n },
    { tag: 'float64', val: 1 },
    { tag: 'text', val: 'x' },
    { tag: 'json', val: '[1,"a"]' },
    { tag: 'numeric', val: '18446744073709551615' },
  ]);
  assert.deepEqual(b.calls[3], ['rollback']);
});

test('query bad requests', () => {
  const b = fake();
  for (const body of ['', '{', '[1]', '{}', '{"sql":1}', '{"sql":" "}', '{"sql":"x","params":{}}']) {
    const r = run(b, req('POST', '/query', body));
    assert.equal(r.status, 400, body);
    assert.equal(typeof json(r).error, 'string');
  }
  assert.deepEqual(b.calls, []);
});

test('database errors', () => {
  let r = run(fake([qf('25006', 'read-only')]), req('POST', '/query', '{"sql":"INSERT"}'));
  assert.equal(r.status, 400);
  assert.deepEqual(json(r), { error: 'read-only', code: '25006', severity: 'ERROR', kind: 'query-failed' });
  const pt = { poolSize: 5, maxOverflow: 10, checkedOut: 15, waiting: 4, waitedMs: 30000n };
  r = run(fake([{ fail: { tag: 'pool-timeout', val: pt } }]), req('POST', '/query', '{"sql":"S"}'));
  assert.equal(r.status, 503);
  assert.equal(header(r, 'retry-after'), '1');
  assert.deepEqual(json(r), {
    error: 'timed out waiting for a database connection',
    pool_size: 5, max_overflow: 10, checked_out: 15, waiting: 4, waited_ms: 30000,
    kind: 'pool-timeout',
  });
  for (const [tag, status] of [
    ['connection-failed', 503], ['timeout', 504], ['not-allowed', 403], ['too-large', 400],
    ['bad-parameter', 400], ['value-conversion', 400],
  ]) {
    r = run(fake([{ fail: { tag, val: 'm' } }]), req('POST', '/query', '{"sql":"S"}'));
    assert.equal(r.status, status, tag);
    assert.deepEqual(json(r), { error: 'm', kind: tag });
  }
});

test('health/db, config, pool/stats', () => {
  let r = run(fake([], { health: { healthy: true, status: 'connected' } }), req('GET', '/health/db'));
  assert.deepEqual([r.status, json(r)], [200, { database_healthy: true, status: 'connected' }]);
  r = run(fake([], { health: { healthy: false, status: 'disconnected', error: 'refused' } }), req('GET', '/health/db'));
  assert.deepEqual([r.status, json(r)], [503, { database_healthy: false, status: 'disconnected', error: 'refused' }]);
  r = run(fake(), req('GET', '/config'));
  assert.equal(
    text(r),
    '{"name":"default","url":"postgres://app:***@127.0.0.1:5432/app","pool_size":5,"max_overflow":10,' +
      '"pool_timeout":30.0,"pool_recycle":3600,"pool_pre_ping":true,"lazy_init":false}',
  );
  r = run(fake(), req('GET', '/pool/stats'));
  assert.deepEqual(json(r), { size: 5, checked_in: 3, checked_out: 2, overflow: 0, total: 5, waiting: 1 });
});

test('notes', () => {
  let b = fake([qf('42P01'), qf('42P07'), noteRows([[1, 't', 'b']])]);
  let r = run(b, req('POST', '/notes', '{"title":"t","body":"b"}'));
  assert.equal(r.status, 201, text(r));
  assert.deepEqual(json(r), { id: 1, title: 't', body: 'b', created_at: '2025-01-02T03:04:05.000600Z' });
  assert.equal(header(r, 'location'), '/notes/1');
  assert.deepEqual(
    b.calls.map((c) => c[0]),
    ['open', 'begin', 'txQuery', 'rollback', 'execute', 'begin', 'txQuery', 'commit'],
  );
  assert.equal(b.calls[4][1], app.CREATE_NOTES);

  for (const body of ['{"body":"b"}', '{"title":"","body":"b"}', `{"title":"${'x'.repeat(201)}","body":""}`, '{"title":"t"}']) {
    assert.equal(run(fake(), req('POST', '/notes', body)).status, 400, body);
  }
  assert.equal(run(fake([noteRows([[2, 'é'.repeat(200), '']])]), req('POST', '/notes', `{"title":"${'é'.repeat(200)}","body":""}`)).status, 201);

  r = run(fake([noteRows([[3, 'a', 'b']])]), req('GET', '/notes/3'));
  assert.equal(json(r).id, 3);
  r = run(fake([noteRows([])]), req('GET', '/notes/4'));
  assert.deepEqual([r.status, json(r)], [404, { error: 'note not found' }]);
  assert.equal(run(fake([qf('42P01')]), req('GET', '/notes/4')).status, 404);
  assert.equal(run(fake(), req('GET', '/notes/abc')).status, 400);
  assert.equal(run(fake(), req('GET', '/notes/99999999999999999999')).status, 400);

  r = run(fake([noteRows([[2, 'b', 'y'], [1, 'a', 'x']])]), req('GET', '/notes'));
  assert.equal(json(r).notes.length, 2);
  assert.deepEqual(json(run(fake([qf('42P01')]), req('GET', '/notes'))), { notes: [] });

  b = fake([1n]);
  r = run(b, req('DELETE', '/notes/5'));
  assert.equal(r.status, 204);
  assert.deepEqual(b.calls[1], ['execute', app.DELETE_NOTE, [{ tag: 'int64', val: 5n }]]);
  assert.equal(run(fake([0n]), req('DELETE', '/notes/5')).status, 404);
});

test('settings from env', () => {
  const env = (o) => (k) => o[k];
  assert.deepEqual(app.settingsFromEnv(env({})), { database: 'default', statementTimeoutMs: 5000 });
  assert.deepEqual(
    app.settingsFromEnv(env({ TARN_DATABASE: 'analytics', QUERY_STATEMENT_TIMEOUT_MS: '0' })),
    { database: 'analytics', statementTimeoutMs: undefined },
  );
  assert.equal(app.settingsFromEnv(env({ QUERY_STATEMENT_TIMEOUT_MS: 'soon' })).statementTimeoutMs, 5000);
});
