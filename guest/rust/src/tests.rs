//! Native unit tests of the request logic against a scripted fake backend.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use serde_json::{Value as Json, json};

use crate::app::{self, Settings};
use crate::backend::{Backend, Db, Tx};
use crate::convert;
use crate::exports::tarn::postgres::handler::{Request, Response};
use crate::tarn::postgres::database::{
    Health, IsolationLevel, PoolConfig, PoolStats, TransactionOptions,
};
use crate::tarn::postgres::types::{
    Column, DataType, Date, DbError, Error, PoolTimeout, RowSet, Time, Timestamp, Value,
};

// ---------------------------------------------------------------------------
// The fake

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Open(String),
    Query(String, Vec<Value>),
    Execute(String, Vec<Value>),
    Begin(TransactionOptions),
    TxQuery(String, Vec<Value>),
    TxExecute(String, Vec<Value>),
    Commit,
    Rollback,
    Health,
    PoolStats,
    PoolConfig,
}

enum Reply {
    Rows(RowSet),
    Count(u64),
    Fail(Error),
}

#[derive(Default)]
struct State {
    calls: RefCell<Vec<Call>>,
    /// Replies to query/execute (plain or in a transaction), in call order.
    replies: RefCell<VecDeque<Reply>>,
    open_error: RefCell<Option<Error>>,
    health: RefCell<Option<Health>>,
}

#[derive(Clone, Default)]
struct Fake(Rc<State>);
struct FakeTx(Rc<State>);

impl Fake {
    fn reply(self, r: Reply) -> Self {
        self.0.replies.borrow_mut().push_back(r);
        self
    }
    fn calls(&self) -> Vec<Call> {
        self.0.calls.borrow().clone()
    }
    fn log(&self, c: Call) {
        self.0.calls.borrow_mut().push(c);
    }
    fn next(&self) -> Reply {
        self.0
            .replies
            .borrow_mut()
            .pop_front()
            .expect("unexpected database call: no reply scripted")
    }
}

fn rows_of(r: Reply) -> Result<RowSet, Error> {
    match r {
        Reply::Rows(rs) => Ok(rs),
        Reply::Fail(e) => Err(e),
        Reply::Count(_) => panic!("query got a count reply"),
    }
}

fn count_of(r: Reply) -> Result<u64, Error> {
    match r {
        Reply::Count(n) => Ok(n),
        Reply::Fail(e) => Err(e),
        Reply::Rows(_) => panic!("execute got a rows reply"),
    }
}

impl Backend for Fake {
    type Db = Fake;
    fn open(&self, name: &str) -> Result<Fake, Error> {
        self.log(Call::Open(name.into()));
        match self.0.open_error.borrow().clone() {
            Some(e) => Err(e),
            None => Ok(self.clone()),
        }
    }
}

impl Db for Fake {
    type Tx = FakeTx;
    fn query(&self, sql: &str, params: &[Value]) -> Result<RowSet, Error> {
        self.log(Call::Query(sql.into(), params.to_vec()));
        rows_of(self.next())
    }
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, Error> {
        self.log(Call::Execute(sql.into(), params.to_vec()));
        count_of(self.next())
    }
    fn begin(&self, options: TransactionOptions) -> Result<FakeTx, Error> {
        self.log(Call::Begin(options));
        Ok(FakeTx(self.0.clone()))
    }
    fn health(&self) -> Health {
        self.log(Call::Health);
        self.0.health.borrow().clone().unwrap()
    }
    fn pool_stats(&self) -> PoolStats {
        self.log(Call::PoolStats);
        PoolStats {
            size: 5,
            checked_in: 3,
            checked_out: 2,
            overflow: 0,
            total: 5,
            waiting: 1,
        }
    }
    fn pool_config(&self) -> PoolConfig {
        self.log(Call::PoolConfig);
        PoolConfig {
            name: "default".into(),
            url: "postgres://app:***@127.0.0.1:5432/app".into(),
            pool_size: 5,
            max_overflow: 10,
            pool_timeout_seconds: 30.0,
            pool_recycle_seconds: 3600,
            pool_pre_ping: true,
            lazy_init: false,
        }
    }
}

impl Tx for FakeTx {
    fn query(&self, sql: &str, params: &[Value]) -> Result<RowSet, Error> {
        let f = Fake(self.0.clone());
        f.log(Call::TxQuery(sql.into(), params.to_vec()));
        rows_of(f.next())
    }
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, Error> {
        let f = Fake(self.0.clone());
        f.log(Call::TxExecute(sql.into(), params.to_vec()));
        count_of(f.next())
    }
    fn commit(self) -> Result<(), Error> {
        Fake(self.0).log(Call::Commit);
        Ok(())
    }
    fn rollback(self) -> Result<(), Error> {
        Fake(self.0).log(Call::Rollback);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Helpers

fn req(method: &str, path: &str, body: &str) -> Request {
    Request {
        method: method.into(),
        path: path.into(),
        query: String::new(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
    }
}

fn run(fake: &Fake, r: Request) -> Response {
    app::handle(fake, &Settings::default(), &r)
}

fn body(resp: &Response) -> Json {
    serde_json::from_slice(&resp.body).expect("body is JSON")
}

fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn col(name: &str, dt: DataType, ty: &str) -> Column {
    Column {
        name: name.into(),
        data_type: dt,
        type_name: ty.into(),
    }
}

fn db_error(code: &str, message: &str) -> Error {
    Error::QueryFailed(DbError {
        code: code.into(),
        severity: "ERROR".into(),
        message: message.into(),
        detail: None,
        hint: None,
    })
}

fn ts(y: i32, mo: u8, d: u8, h: u8, mi: u8, s: u8, us: u32) -> Timestamp {
    Timestamp {
        date: Date {
            year: y,
            month: mo,
            day: d,
        },
        time: Time {
            hour: h,
            minute: mi,
            second: s,
            microsecond: us,
        },
    }
}

fn note_rows(notes: &[(i64, &str, &str)]) -> RowSet {
    RowSet {
        columns: vec![
            col("id", DataType::Int64, "int8"),
            col("title", DataType::Text, "text"),
            col("body", DataType::Text, "text"),
            col("created_at", DataType::Timestamptz, "timestamptz"),
        ],
        rows: notes
            .iter()
            .map(|(id, t, b)| {
                vec![
                    Value::Int64(*id),
                    Value::Text((*t).into()),
                    Value::Text((*b).into()),
                    Value::Timestamptz(ts(2025, 1, 2, 3, 4, 5, 600)),
                ]
            })
            .collect(),
    }
}

fn read_only_opts(timeout: Option<u32>) -> TransactionOptions {
    TransactionOptions {
        isolation: IsolationLevel::ReadCommitted,
        read_only: true,
        statement_timeout_ms: timeout,
    }
}

// ---------------------------------------------------------------------------
// Routing

#[test]
fn health_needs_no_database() {
    let fake = Fake::default();
    let resp = run(&fake, req("GET", "/health", ""));
    assert_eq!(resp.status, 200);
    assert_eq!(body(&resp), json!({"status": "ok"}));
    assert_eq!(header(&resp, "content-type"), Some("application/json"));
    assert!(fake.calls().is_empty());
    assert_eq!(run(&fake, req("GET", "/health/", "")).status, 200);
}

#[test]
fn unknown_path_is_404() {
    let fake = Fake::default();
    for p in [
        "/",
        "/nope",
        "/health/db/x",
        "/notes/1/2",
        "/querys",
        "//health",
    ] {
        let resp = run(&fake, req("GET", p, ""));
        assert_eq!(resp.status, 404, "{p}");
        assert_eq!(body(&resp), json!({"error": "not found"}));
        assert_eq!(header(&resp, "content-type"), Some("application/json"));
    }
    assert!(fake.calls().is_empty());
}

#[test]
fn wrong_method_is_405_with_allow() {
    let fake = Fake::default();
    for (m, p, allow) in [
        ("GET", "/query", "POST"),
        ("POST", "/health", "GET"),
        ("DELETE", "/health/db", "GET"),
        ("PUT", "/config", "GET"),
        ("POST", "/pool/stats", "GET"),
        ("DELETE", "/notes", "GET, POST"),
        ("POST", "/notes/3", "GET, DELETE"),
    ] {
        let resp = run(&fake, req(m, p, ""));
        assert_eq!(resp.status, 405, "{m} {p}");
        assert_eq!(header(&resp, "allow"), Some(allow), "{m} {p}");
        assert_eq!(body(&resp)["error"], "method not allowed");
    }
    assert!(fake.calls().is_empty());
}

#[test]
fn method_is_case_insensitive() {
    let fake = Fake::default();
    assert_eq!(run(&fake, req("get", "/health", "")).status, 200);
}

// ---------------------------------------------------------------------------
// /query

#[test]
fn query_runs_read_only_and_maps_params_and_values() {
    let rs = RowSet {
        columns: vec![
            col("n", DataType::Int32, "int4"),
            col("s", DataType::Int16, "int2"),
            col("b", DataType::Int64, "int8"),
            col("t", DataType::Text, "text"),
            col("f", DataType::Float64, "float8"),
            col("r", DataType::Float32, "float4"),
            col("ok", DataType::Boolean, "bool"),
            col("nul", DataType::Text, "text"),
            col("bin", DataType::Bytes, "bytea"),
            col("j", DataType::Json, "jsonb"),
            col("u", DataType::Uuid, "uuid"),
            col("d", DataType::Date, "date"),
            col("tm", DataType::Time, "time"),
            col("ts", DataType::Timestamp, "timestamp"),
            col("tz", DataType::Timestamptz, "timestamptz"),
            col("num", DataType::Numeric, "numeric"),
        ],
        rows: vec![vec![
            Value::Int32(12),
            Value::Int16(-3),
            Value::Int64(9_007_199_254_740_993),
            Value::Text("hi".into()),
            Value::Float64(1.5),
            Value::Float32(0.1),
            Value::Boolean(true),
            Value::Null,
            Value::Bytes(vec![0x0a, 0x0b, 0xff]),
            Value::Json(r#"{"a":[1,2]}"#.into()),
            Value::Uuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
            Value::Date(Date {
                year: 2024,
                month: 2,
                day: 29,
            }),
            Value::Time(Time {
                hour: 7,
                minute: 8,
                second: 9,
                microsecond: 0,
            }),
            Value::Timestamp(ts(2024, 12, 31, 23, 59, 59, 123)),
            Value::Timestamptz(ts(1999, 1, 1, 0, 0, 0, 0)),
            Value::Numeric("12.50".into()),
        ]],
    };
    let fake = Fake::default().reply(Reply::Rows(rs));
    let resp = run(
        &fake,
        req(
            "POST",
            "/query",
            r#"{"sql": "SELECT $1", "params": [null, true, 7, -8, 2.5, "x", [1, "a"], {"k": null}, 18446744073709551615]}"#,
        ),
    );
    assert_eq!(resp.status, 200, "{}", body(&resp));
    assert_eq!(
        body(&resp),
        json!({
            "columns": ["n","s","b","t","f","r","ok","nul","bin","j","u","d","tm","ts","tz","num"],
            "rows": [[
                12, -3, 9_007_199_254_740_993i64, "hi", 1.5, 0.1, true, null, "\\x0a0bff",
                {"a": [1, 2]}, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "2024-02-29", "07:08:09",
                "2024-12-31T23:59:59.000123", "1999-01-01T00:00:00Z", "12.50"
            ]],
            "row_count": 1
        })
    );
    assert_eq!(
        fake.calls(),
        vec![
            Call::Open("default".into()),
            Call::Begin(read_only_opts(Some(5000))),
            Call::TxQuery(
                "SELECT $1".into(),
                vec![
                    Value::Null,
                    Value::Boolean(true),
                    Value::Int64(7),
                    Value::Int64(-8),
                    Value::Float64(2.5),
                    Value::Text("x".into()),
                    Value::Json(r#"[1,"a"]"#.into()),
                    Value::Json(r#"{"k":null}"#.into()),
                    Value::Numeric("18446744073709551615".into()),
                ]
            ),
            Call::Rollback,
        ]
    );
}

#[test]
fn query_without_params_and_empty_result() {
    let rs = RowSet {
        columns: vec![col("x", DataType::Int32, "int4")],
        rows: vec![],
    };
    let fake = Fake::default().reply(Reply::Rows(rs));
    let resp = run(
        &fake,
        req(
            "POST",
            "/query",
            r#"{"sql": "SELECT 1 WHERE false", "params": null}"#,
        ),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(
        body(&resp),
        json!({"columns": ["x"], "rows": [], "row_count": 0})
    );
    assert_eq!(
        fake.calls()[2],
        Call::TxQuery("SELECT 1 WHERE false".into(), vec![])
    );
}

#[test]
fn query_bad_requests_touch_no_database() {
    let fake = Fake::default();
    for (b, msg) in [
        ("", "invalid JSON body"),
        ("{", "invalid JSON body"),
        ("[1]", "request body must be a JSON object"),
        ("{}", "missing `sql`"),
        (r#"{"sql": 1}"#, "`sql` must be a string"),
        (r#"{"sql": "  "}"#, "`sql` must not be empty"),
        (
            r#"{"sql": "SELECT 1", "params": {"a": 1}}"#,
            "`params` must be an array",
        ),
        (
            r#"{"sql": "SELECT 1", "params": "x"}"#,
            "`params` must be an array",
        ),
    ] {
        let resp = run(&fake, req("POST", "/query", b));
        assert_eq!(resp.status, 400, "{b}");
        let err = body(&resp)["error"].as_str().unwrap().to_string();
        assert!(err.starts_with(msg), "{b}: {err}");
    }
    assert!(fake.calls().is_empty());
}

#[test]
fn query_failed_is_400_with_sqlstate() {
    let fake = Fake::default().reply(Reply::Fail(Error::QueryFailed(DbError {
        code: "25006".into(),
        severity: "ERROR".into(),
        message: "cannot execute INSERT in a read-only transaction".into(),
        detail: Some("some detail".into()),
        hint: None,
    })));
    let resp = run(
        &fake,
        req("POST", "/query", r#"{"sql": "INSERT INTO t VALUES (1)"}"#),
    );
    assert_eq!(resp.status, 400);
    assert_eq!(
        body(&resp),
        json!({
            "error": "cannot execute INSERT in a read-only transaction",
            "kind": "query-failed",
            "code": "25006",
            "severity": "ERROR",
            "detail": "some detail",
        })
    );
    assert_eq!(fake.calls().last(), Some(&Call::Rollback));
}

#[test]
fn pool_timeout_is_503_with_retry_after() {
    let fake = Fake::default().reply(Reply::Fail(Error::PoolTimeout(PoolTimeout {
        pool_size: 5,
        max_overflow: 10,
        checked_out: 15,
        waiting: 4,
        waited_ms: 30000,
    })));
    let resp = run(&fake, req("POST", "/query", r#"{"sql": "SELECT 1"}"#));
    assert_eq!(resp.status, 503);
    assert_eq!(header(&resp, "retry-after"), Some("1"));
    assert_eq!(header(&resp, "content-type"), Some("application/json"));
    assert_eq!(
        body(&resp),
        json!({
            "error": "timed out waiting for a database connection",
            "kind": "pool-timeout",
            "pool_size": 5, "max_overflow": 10, "checked_out": 15, "waiting": 4, "waited_ms": 30000,
        })
    );
}

#[test]
fn error_kinds_map_to_statuses() {
    for (err, status, kind) in [
        (
            Error::ConnectionFailed("refused".into()),
            503,
            "connection-failed",
        ),
        (Error::Timeout("deadline".into()), 504, "timeout"),
        (Error::NotAllowed("nope".into()), 403, "not-allowed"),
        (Error::TooLarge("too many rows".into()), 400, "too-large"),
        (Error::BadParameter("bad uuid".into()), 400, "bad-parameter"),
        (
            Error::ValueConversion("point".into()),
            400,
            "value-conversion",
        ),
    ] {
        let msg = app::error_message(&err);
        let fake = Fake::default().reply(Reply::Fail(err));
        let resp = run(&fake, req("POST", "/query", r#"{"sql": "SELECT 1"}"#));
        assert_eq!(resp.status, status, "{kind}");
        assert_eq!(body(&resp), json!({"error": msg, "kind": kind}));
        assert_eq!(header(&resp, "retry-after"), None);
    }
}

#[test]
fn open_not_allowed_is_403() {
    let fake = Fake::default();
    *fake.0.open_error.borrow_mut() = Some(Error::NotAllowed("database `x` not granted".into()));
    let resp = run(&fake, req("POST", "/query", r#"{"sql": "SELECT 1"}"#));
    assert_eq!(resp.status, 403);
    assert_eq!(body(&resp)["kind"], "not-allowed");
    let resp = run(&fake, req("GET", "/config", ""));
    assert_eq!(resp.status, 403);
}

#[test]
fn settings_from_env() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    assert_eq!(Settings::from_env(env(&[])), Settings::default());
    assert_eq!(
        Settings::from_env(env(&[
            ("TARN_DATABASE", "analytics"),
            ("QUERY_STATEMENT_TIMEOUT_MS", "250")
        ])),
        Settings {
            database: "analytics".into(),
            statement_timeout_ms: Some(250)
        }
    );
    assert_eq!(
        Settings::from_env(env(&[
            ("TARN_DATABASE", ""),
            ("QUERY_STATEMENT_TIMEOUT_MS", "0")
        ])),
        Settings {
            database: "default".into(),
            statement_timeout_ms: None
        }
    );
    assert_eq!(
        Settings::from_env(env(&[("QUERY_STATEMENT_TIMEOUT_MS", "soon")])).statement_timeout_ms,
        Some(5000)
    );
}

#[test]
fn settings_choose_database_and_timeout() {
    let rs = RowSet {
        columns: vec![],
        rows: vec![],
    };
    let fake = Fake::default().reply(Reply::Rows(rs));
    let settings = Settings {
        database: "analytics".into(),
        statement_timeout_ms: Some(250),
    };
    let resp = app::handle(
        &fake,
        &settings,
        &req("POST", "/query", r#"{"sql": "SELECT"}"#),
    );
    assert_eq!(resp.status, 200);
    assert_eq!(fake.calls()[0], Call::Open("analytics".into()));
    assert_eq!(fake.calls()[1], Call::Begin(read_only_opts(Some(250))));
}

// ---------------------------------------------------------------------------
// /health/db, /config, /pool/stats

#[test]
fn health_db_connected() {
    let fake = Fake::default();
    *fake.0.health.borrow_mut() = Some(Health {
        healthy: true,
        status: "connected".into(),
        error: None,
    });
    let resp = run(&fake, req("GET", "/health/db", ""));
    assert_eq!(resp.status, 200);
    assert_eq!(
        body(&resp),
        json!({"database_healthy": true, "status": "connected"})
    );
}

#[test]
fn health_db_disconnected() {
    for (error, reason) in [
        (Some("connection refused"), "connection refused"),
        (None, "database unreachable"),
        (Some(""), "database unreachable"),
    ] {
        let fake = Fake::default();
        *fake.0.health.borrow_mut() = Some(Health {
            healthy: false,
            status: "disconnected".into(),
            error: error.map(String::from),
        });
        let resp = run(&fake, req("GET", "/health/db", ""));
        assert_eq!(resp.status, 503);
        assert_eq!(
            body(&resp),
            json!({"database_healthy": false, "status": "disconnected", "error": reason})
        );
    }
    let fake = Fake::default();
    *fake.0.open_error.borrow_mut() = Some(Error::NotAllowed("not granted".into()));
    let resp = run(&fake, req("GET", "/health/db", ""));
    assert_eq!(resp.status, 503);
    assert_eq!(body(&resp)["error"], "not granted");
}

#[test]
fn config_shape() {
    let fake = Fake::default();
    let resp = run(&fake, req("GET", "/config", ""));
    assert_eq!(resp.status, 200);
    assert_eq!(
        body(&resp),
        json!({
            "name": "default",
            "url": "postgres://app:***@127.0.0.1:5432/app",
            "pool_size": 5,
            "max_overflow": 10,
            "pool_timeout": 30.0,
            "pool_recycle": 3600,
            "pool_pre_ping": true,
            "lazy_init": false,
        })
    );
    assert!(body(&resp)["pool_timeout"].is_f64());
}

#[test]
fn pool_stats_shape() {
    let fake = Fake::default();
    let resp = run(&fake, req("GET", "/pool/stats", ""));
    assert_eq!(resp.status, 200);
    assert_eq!(
        body(&resp),
        json!({"size": 5, "checked_in": 3, "checked_out": 2, "overflow": 0, "total": 5, "waiting": 1})
    );
    assert_eq!(
        fake.calls(),
        vec![Call::Open("default".into()), Call::PoolStats]
    );
}

// ---------------------------------------------------------------------------
// Notes

fn rw_opts() -> TransactionOptions {
    TransactionOptions {
        isolation: IsolationLevel::ReadCommitted,
        read_only: false,
        statement_timeout_ms: Some(5000),
    }
}

fn insert_call(title: &str, b: &str) -> Call {
    Call::TxQuery(
        app::INSERT_NOTE.into(),
        vec![Value::Text(title.into()), Value::Text(b.into())],
    )
}

#[test]
fn create_note_commits() {
    let fake = Fake::default().reply(Reply::Rows(note_rows(&[(7, "t", "b")])));
    let resp = run(
        &fake,
        req("POST", "/notes", r#"{"title": "t", "body": "b"}"#),
    );
    assert_eq!(resp.status, 201);
    assert_eq!(
        body(&resp),
        json!({"id": 7, "title": "t", "body": "b", "created_at": "2025-01-02T03:04:05.000600Z"})
    );
    assert_eq!(header(&resp, "location"), Some("/notes/7"));
    assert_eq!(
        fake.calls(),
        vec![
            Call::Open("default".into()),
            Call::Begin(rw_opts()),
            insert_call("t", "b"),
            Call::Commit
        ]
    );
}

#[test]
fn create_note_creates_missing_table_and_retries() {
    for create_reply in [
        Reply::Count(0),
        Reply::Fail(db_error("42P07", "relation \"notes\" already exists")),
        Reply::Fail(db_error(
            "23505",
            "duplicate key value violates unique constraint",
        )),
    ] {
        let fake = Fake::default()
            .reply(Reply::Fail(db_error(
                "42P01",
                "relation \"notes\" does not exist",
            )))
            .reply(create_reply)
            .reply(Reply::Rows(note_rows(&[(1, "t", "b")])));
        let resp = run(
            &fake,
            req("POST", "/notes", r#"{"title": "t", "body": "b"}"#),
        );
        assert_eq!(resp.status, 201, "{}", body(&resp));
        assert_eq!(body(&resp)["id"], 1);
        assert_eq!(
            fake.calls(),
            vec![
                Call::Open("default".into()),
                Call::Begin(rw_opts()),
                insert_call("t", "b"),
                Call::Rollback,
                Call::Execute(app::CREATE_NOTES.into(), vec![]),
                Call::Begin(rw_opts()),
                insert_call("t", "b"),
                Call::Commit,
            ]
        );
    }
}

#[test]
fn create_note_retries_only_once() {
    let fake = Fake::default()
        .reply(Reply::Fail(db_error(
            "42P01",
            "relation \"notes\" does not exist",
        )))
        .reply(Reply::Count(0))
        .reply(Reply::Fail(db_error(
            "42P01",
            "relation \"notes\" does not exist",
        )));
    let resp = run(
        &fake,
        req("POST", "/notes", r#"{"title": "t", "body": "b"}"#),
    );
    assert_eq!(resp.status, 400);
    assert_eq!(body(&resp)["code"], "42P01");
}

#[test]
fn create_note_other_create_failure_is_reported() {
    let fake = Fake::default()
        .reply(Reply::Fail(db_error(
            "42P01",
            "relation \"notes\" does not exist",
        )))
        .reply(Reply::Fail(db_error(
            "42501",
            "permission denied for schema public",
        )));
    let resp = run(
        &fake,
        req("POST", "/notes", r#"{"title": "t", "body": "b"}"#),
    );
    assert_eq!(resp.status, 400);
    assert_eq!(body(&resp)["code"], "42501");
}

#[test]
fn create_note_validation() {
    let fake = Fake::default();
    let long = "x".repeat(201);
    let long_body = format!(r#"{{"title": "{long}", "body": ""}}"#);
    for b in [
        r#"{"body": "b"}"#,
        r#"{"title": "t"}"#,
        r#"{"title": "", "body": "b"}"#,
        r#"{"title": 5, "body": "b"}"#,
        r#"{"title": "t", "body": null}"#,
        long_body.as_str(),
        "nope",
    ] {
        let resp = run(&fake, req("POST", "/notes", b));
        assert_eq!(resp.status, 400, "{b}");
        assert!(body(&resp)["error"].is_string());
    }
    assert!(fake.calls().is_empty());

    // 200 characters (multi-byte) is fine; an empty body text is fine.
    let title = "é".repeat(200);
    let fake = Fake::default().reply(Reply::Rows(note_rows(&[(2, &title, "")])));
    let b = format!(r#"{{"title": "{title}", "body": ""}}"#);
    assert_eq!(run(&fake, req("POST", "/notes", &b)).status, 201);
}

#[test]
fn get_note() {
    let fake = Fake::default().reply(Reply::Rows(note_rows(&[(3, "a", "b")])));
    let resp = run(&fake, req("GET", "/notes/3", ""));
    assert_eq!(resp.status, 200);
    assert_eq!(body(&resp)["id"], 3);
    assert_eq!(body(&resp)["title"], "a");
    assert_eq!(
        fake.calls()[1],
        Call::Query(app::SELECT_NOTE.into(), vec![Value::Int64(3)])
    );

    let fake = Fake::default().reply(Reply::Rows(note_rows(&[])));
    let resp = run(&fake, req("GET", "/notes/4", ""));
    assert_eq!(resp.status, 404);
    assert_eq!(body(&resp), json!({"error": "note not found"}));

    let fake = Fake::default().reply(Reply::Fail(db_error("42P01", "no table")));
    assert_eq!(run(&fake, req("GET", "/notes/4", "")).status, 404);

    let fake = Fake::default();
    for p in ["/notes/abc", "/notes/1.5", "/notes/99999999999999999999"] {
        let resp = run(&fake, req("GET", p, ""));
        assert_eq!(resp.status, 400, "{p}");
    }
    assert!(fake.calls().is_empty());
}

#[test]
fn list_notes() {
    let fake = Fake::default().reply(Reply::Rows(note_rows(&[(2, "b", "y"), (1, "a", "x")])));
    let resp = run(&fake, req("GET", "/notes", ""));
    assert_eq!(resp.status, 200);
    let b = body(&resp);
    assert_eq!(b["notes"].as_array().unwrap().len(), 2);
    assert_eq!(b["notes"][0]["id"], 2);
    assert_eq!(fake.calls()[1], Call::Query(app::LIST_NOTES.into(), vec![]));

    let fake = Fake::default().reply(Reply::Fail(db_error("42P01", "no table")));
    let resp = run(&fake, req("GET", "/notes", ""));
    assert_eq!(resp.status, 200);
    assert_eq!(body(&resp), json!({"notes": []}));
}

#[test]
fn delete_note() {
    let fake = Fake::default().reply(Reply::Count(1));
    let resp = run(&fake, req("DELETE", "/notes/5", ""));
    assert_eq!(resp.status, 204);
    assert!(resp.body.is_empty());
    assert_eq!(
        fake.calls()[1],
        Call::Execute(app::DELETE_NOTE.into(), vec![Value::Int64(5)])
    );

    let fake = Fake::default().reply(Reply::Count(0));
    assert_eq!(run(&fake, req("DELETE", "/notes/5", "")).status, 404);
    let fake = Fake::default().reply(Reply::Fail(db_error("42P01", "no table")));
    assert_eq!(run(&fake, req("DELETE", "/notes/5", "")).status, 404);
    assert_eq!(
        run(&Fake::default(), req("DELETE", "/notes/x", "")).status,
        400
    );
}

// ---------------------------------------------------------------------------
// Conversions

#[test]
fn floats() {
    use convert::value_to_json as j;
    assert_eq!(j(Value::Float64(f64::NAN)), json!("NaN"));
    assert_eq!(j(Value::Float64(f64::INFINITY)), json!("Infinity"));
    assert_eq!(j(Value::Float64(f64::NEG_INFINITY)), json!("-Infinity"));
    assert_eq!(j(Value::Float32(f32::NAN)), json!("NaN"));
    assert_eq!(j(Value::Float32(f32::NEG_INFINITY)), json!("-Infinity"));
    assert_eq!(j(Value::Float32(1.25)), json!(1.25));
    assert_eq!(j(Value::Float64(-0.5)), json!(-0.5));
    assert_eq!(convert::param_from_json(&json!(1.0)), Value::Float64(1.0));
    assert_eq!(convert::param_from_json(&json!(-1)), Value::Int64(-1));
    // Past u64 (and below i64) serde_json has only an f64.
    let big: Json = serde_json::from_str("[184467440737095516160, -9223372036854775809]").unwrap();
    assert_eq!(
        big.as_array()
            .unwrap()
            .iter()
            .map(convert::param_from_json)
            .collect::<Vec<_>>(),
        vec![
            Value::Float64("184467440737095516160".parse().unwrap()),
            Value::Float64(i64::MIN as f64)
        ]
    );
}

#[test]
fn bytes_and_json() {
    use convert::value_to_json as j;
    assert_eq!(j(Value::Bytes(vec![])), json!("\\x"));
    assert_eq!(j(Value::Bytes(vec![0, 16, 255])), json!("\\x0010ff"));
    assert_eq!(j(Value::Json("null".into())), Json::Null);
    assert_eq!(j(Value::Json("\"s\"".into())), json!("s"));
    assert_eq!(j(Value::Json("not json".into())), json!("not json"));
}

#[test]
fn dates_and_times() {
    use convert::value_to_json as j;
    assert_eq!(
        j(Value::Date(Date {
            year: 5,
            month: 1,
            day: 9
        })),
        json!("0005-01-09")
    );
    assert_eq!(
        j(Value::Date(Date {
            year: -43,
            month: 3,
            day: 15
        })),
        json!("-0043-03-15")
    );
    assert_eq!(
        j(Value::Date(Date {
            year: 12345,
            month: 12,
            day: 31
        })),
        json!("12345-12-31")
    );
    assert_eq!(
        j(Value::Time(Time {
            hour: 23,
            minute: 0,
            second: 1,
            microsecond: 500000
        })),
        json!("23:00:01.500000")
    );
    assert_eq!(
        j(Value::Time(Time {
            hour: 0,
            minute: 0,
            second: 0,
            microsecond: 1
        })),
        json!("00:00:00.000001")
    );
    assert_eq!(
        j(Value::Timestamp(ts(2000, 2, 3, 4, 5, 6, 0))),
        json!("2000-02-03T04:05:06")
    );
    assert_eq!(
        j(Value::Timestamptz(ts(2000, 2, 3, 4, 5, 6, 7))),
        json!("2000-02-03T04:05:06.000007Z")
    );
}
