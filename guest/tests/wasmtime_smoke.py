"""Runs guest components on real Wasmtime (wasmtime-py's component API, Wasmtime
50's C API) with WASI p2 and a scripted fake `tarn:postgres/database`, a fresh
store and instance per request, through 13 requests covering every endpoint,
typed values, errors, env vars and the notes transaction/retry flow.

    guest/tests/run.sh <component.wasm>...

A smoke test of the components on Wasmtime's canonical ABI and WASI p2, not of
tarn's host (whose Wasmtime is 48). guest/js/test/components.mjs has the full
scenario list (on Node via jco).
"""
import json, sys, time
import wasmtime
from wasmtime import Engine, Store, WasiConfig, Config
from wasmtime.component import Component, Linker, ResourceType, ResourceHost, Record, Variant

DB_T, TX_T = 1, 2
state = {}

def rec(**kw):
    r = Record()
    for k, v in kw.items():
        setattr(r, k.replace('_', '-'), v)
    return r

def next_reply(store):
    r = state['replies'].pop(0)
    if isinstance(r, dict) and 'fail' in r:
        return r['fail']
    return r

def v2py(v):  # Variant value -> simple tuple for logging
    return (v.tag,) if v.payload is None else (v.tag, v.payload if not isinstance(v.payload, Record) else vars(v.payload))

def make_linker(engine):
    linker = Linker(engine)
    linker.add_wasip2()
    with linker.root() as root:
        with root.add_instance('tarn:postgres/types@0.1.0') as _:
            pass
        with root.add_instance('tarn:postgres/database@0.1.0') as db:
            db.add_resource('database', ResourceType.host(DB_T), lambda store, rep: state['calls'].append(('drop-db',)))
            db.add_resource('transaction', ResourceType.host(TX_T), lambda store, rep: state['calls'].append(('drop-tx',)))
            def open_(store, name):
                state['calls'].append(('open', name))
                return ResourceHost.own(1, DB_T).to_any(store)
            def query(store, self, sql, params):
                state['calls'].append(('query', sql, [v2py(p) for p in params])); return next_reply(store)
            def execute(store, self, sql, params):
                state['calls'].append(('execute', sql, [v2py(p) for p in params])); return next_reply(store)
            def begin(store, self, opts):
                state['calls'].append(('begin', getattr(opts, 'isolation'), getattr(opts, 'read-only'), getattr(opts, 'statement-timeout-ms')))
                return ResourceHost.own(7, TX_T).to_any(store)
            def health(store, self):
                state['calls'].append(('health',)); return rec(healthy=False, status='disconnected', error='refused')
            def pool_stats(store, self):
                return rec(size=5, checked_in=3, checked_out=2, overflow=0, total=5, waiting=1)
            def pool_config(store, self):
                return rec(name='default', url='postgres://u:***@h/db', pool_size=5, max_overflow=10,
                           pool_timeout_seconds=30.0, pool_recycle_seconds=3600, pool_pre_ping=True, lazy_init=False)
            def tx_query(store, self, sql, params):
                state['calls'].append(('tx-query', sql, [v2py(p) for p in params])); return next_reply(store)
            def tx_execute(store, self, sql, params):
                state['calls'].append(('tx-execute', sql)); return next_reply(store)
            def commit(store, tx):
                state['calls'].append(('commit',)); return None
            def rollback(store, tx):
                state['calls'].append(('rollback',)); return None
            def wrap(f):
                def g(store, *args):
                    try:
                        return f(store, *args)
                    finally:
                        for a in args:
                            if isinstance(a, wasmtime.component.ResourceAny):
                                a.drop(store)
                return g
            query, execute, begin, health, pool_stats, pool_config, tx_query, tx_execute, commit, rollback = map(
                wrap, (query, execute, begin, health, pool_stats, pool_config, tx_query, tx_execute, commit, rollback))
            db.add_func('[static]database.open', open_)
            db.add_func('[method]database.query', query)
            db.add_func('[method]database.execute', execute)
            db.add_func('[method]database.begin', begin)
            db.add_func('[method]database.health', health)
            db.add_func('[method]database.pool-stats', pool_stats)
            db.add_func('[method]database.pool-config', pool_config)
            db.add_func('[method]transaction.query', tx_query)
            db.add_func('[method]transaction.execute', tx_execute)
            db.add_func('[static]transaction.commit', commit)
            db.add_func('[static]transaction.rollback', rollback)
    return linker

def col(name, dt, tn):
    return rec(name=name, data_type=dt, type_name=tn)

def ts(y, mo, d, h, mi, s, us):
    return rec(date=rec(year=y, month=mo, day=d), time=rec(hour=h, minute=mi, second=s, microsecond=us))

NOTE_ROWS = rec(columns=[col('id', 'int64', 'int8'), col('title', 'text', 'text'), col('body', 'text', 'text'),
                         col('created_at', 'timestamptz', 'timestamptz')],
                rows=[[Variant('int64', 7), Variant('text', 't'), Variant('text', 'b'), Variant('timestamptz', ts(2025, 1, 2, 3, 4, 5, 600))]])
def qf(code, msg):
    return Variant('query-failed', rec(code=code, severity='ERROR', message=msg, detail=None, hint=None))

SCENARIOS = [
    ('GET', '/health', '', {}, [], 200, {"status": "ok"}),
    ('GET', '/nope', '', {}, [], 404, {"error": "not found"}),
    ('GET', '/query', '', {}, [], 405, {"error": "method not allowed"}),
    ('POST', '/query', '{"sql":"SELECT $1","params":[1,2.5,"x",null,true,[1]]}', {'QUERY_STATEMENT_TIMEOUT_MS': '250', 'TARN_DATABASE': 'analytics'},
     [rec(columns=[col('a', 'int32', 'int4'), col('b', 'bytes', 'bytea'), col('c', 'float32', 'float4'), col('d', 'json', 'jsonb'),
                   col('e', 'date', 'date'), col('f', 'float64', 'float8'), col('g', 'numeric', 'numeric')],
          rows=[[Variant('int32', 12), Variant('bytes', b'\x0a\x0b'), Variant('float32', 0.1), Variant('json', '{"k":[1,2]}'),
                 Variant('date', rec(year=2024, month=2, day=29)), Variant('float64', float('nan')), Variant('numeric', '1.50')], [Variant('null')] * 7])],
     200, {"columns": ["a", "b", "c", "d", "e", "f", "g"], "rows": [[12, "\\x0a0b", 0.1, {"k": [1, 2]}, "2024-02-29", "NaN", "1.50"], [None] * 7], "row_count": 2}),
    ('POST', '/query', '{"sql":"INSERT"}', {}, [qf('25006', 'read-only')], 400,
     {"error": "read-only", "code": "25006", "severity": "ERROR", "kind": "query-failed"}),
    ('POST', '/query', '{"sql":"S"}', {}, [Variant('pool-timeout', rec(pool_size=5, max_overflow=10, checked_out=15, waiting=2, waited_ms=30000))], 503,
     {"error": "timed out waiting for a database connection", "pool_size": 5, "max_overflow": 10, "checked_out": 15, "waiting": 2, "waited_ms": 30000, "kind": "pool-timeout"}),
    ('GET', '/health/db', '', {}, [], 503, {"database_healthy": False, "status": "disconnected", "error": "refused"}),
    ('GET', '/config', '', {}, [], 200, {"name": "default", "url": "postgres://u:***@h/db", "pool_size": 5, "max_overflow": 10,
                                         "pool_timeout": 30.0, "pool_recycle": 3600, "pool_pre_ping": True, "lazy_init": False}),
    ('GET', '/pool/stats', '', {}, [], 200, {"size": 5, "checked_in": 3, "checked_out": 2, "overflow": 0, "total": 5, "waiting": 1}),
    ('POST', '/notes', '{"title":"t","body":"b"}', {}, [qf('42P01', 'no table'), 0, NOTE_ROWS], 201,
     {"id": 7, "title": "t", "body": "b", "created_at": "2025-01-02T03:04:05.000600Z"}),
    ('GET', '/notes/7', '', {}, [NOTE_ROWS], 200, {"id": 7, "title": "t", "body": "b", "created_at": "2025-01-02T03:04:05.000600Z"}),
    ('DELETE', '/notes/7', '', {}, [1], 204, None),
    ('GET', '/notes/x', '', {}, [], 400, {"error": "note id must be a 64-bit integer", "id": "x"}),
]

def main(paths):
    cfg = Config()
    engine = Engine(cfg)
    linker = make_linker(engine)
    failed = passed = 0
    for path in paths:
        t0 = time.time()
        comp = Component.from_file(engine, path)
        print(f'# {path} (compiled in {time.time() - t0:.1f} s)')
        for (method, p, body, env, replies, status, want) in SCENARIOS:
            state.update(calls=[], replies=list(replies))
            store = Store(engine)
            wasi = WasiConfig(); wasi.env = list(env.items()); store.set_wasi(wasi)
            inst = linker.instantiate(store, comp)
            iface = comp.get_export_index('tarn:postgres/handler@0.1.0')
            fidx = comp.get_export_index('handle', instance=iface)
            f = inst.get_func(store, fidx)
            req = rec(method=method, path=p, query='', headers=[('content-type', 'application/json')], body=body.encode())
            t1 = time.time()
            resp = f(store, req)
            f.post_return(store)
            dt = (time.time() - t1) * 1000
            got_status = getattr(resp, 'status'); headers = dict(getattr(resp, 'headers')); got_body = bytes(getattr(resp, 'body'))
            problems = []
            if got_status != status: problems.append(f'status {got_status} want {status}')
            if headers.get('content-type') != 'application/json': problems.append(f'headers {headers}')
            if want is None:
                if got_body: problems.append(f'body {got_body!r}')
            else:
                try:
                    gb = json.loads(got_body)
                except Exception as e:
                    gb = f'<{e}> {got_body!r}'
                if gb != want: problems.append(f'body {gb} want {want}')
            if state['replies']: problems.append(f'unused replies {state["replies"]}')
            if p == '/query' and env:
                if state['calls'][0] != ('open', 'analytics') or state['calls'][1][3] != 250: problems.append(f'calls {state["calls"][:2]}')
            if method == 'POST' and p == '/notes':
                kinds = [c[0] for c in state['calls'] if not c[0].startswith('drop')]
                if kinds != ['open', 'begin', 'tx-query', 'rollback', 'execute', 'begin', 'tx-query', 'commit']: problems.append(f'calls {state["calls"]}')
            name = f'{method} {p}'
            if problems:
                failed += 1; print(f'not ok - {name}: ' + '; '.join(problems))
            else:
                passed += 1; print(f'ok - {name} ({dt:.1f} ms)')
    print(f'{passed} passed, {failed} failed')
    return 1 if failed else 0

sys.exit(main(sys.argv[1:]))
