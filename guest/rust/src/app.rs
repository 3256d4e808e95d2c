//! Routing and request handling, over the [`Backend`] trait.

use serde_json::{Map, Value as Json, json};

use crate::backend::{Backend, Db, Tx};
use crate::convert::{param_from_json, row_to_object, value_to_json};
use crate::exports::tarn::postgres::handler::{Request, Response};
use crate::tarn::postgres::database::{IsolationLevel, TransactionOptions};
use crate::tarn::postgres::types::{DbError, Error, Value};

/// Per-request settings, from the component's environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The database to open: `TARN_DATABASE`, else `default`.
    pub database: String,
    /// `statement_timeout` for `/query` and the notes transactions:
    /// `QUERY_STATEMENT_TIMEOUT_MS`, else 5000; `0` means none.
    pub statement_timeout_ms: Option<u32>,
}

pub const DEFAULT_DATABASE: &str = "default";
pub const DEFAULT_STATEMENT_TIMEOUT_MS: u32 = 5000;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database: DEFAULT_DATABASE.into(),
            statement_timeout_ms: Some(DEFAULT_STATEMENT_TIMEOUT_MS),
        }
    }
}

impl Settings {
    /// Reads `TARN_DATABASE` and `QUERY_STATEMENT_TIMEOUT_MS` through `get`.
    /// Empty or unparsable values fall back to the defaults.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Self {
        let database = get("TARN_DATABASE")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_DATABASE.into());
        let statement_timeout_ms =
            match get("QUERY_STATEMENT_TIMEOUT_MS").and_then(|s| s.trim().parse::<u32>().ok()) {
                Some(0) => None,
                Some(ms) => Some(ms),
                None => Some(DEFAULT_STATEMENT_TIMEOUT_MS),
            };
        Settings {
            database,
            statement_timeout_ms,
        }
    }
}

/// A handler's outcome: `Err` carries an error response, so `?` works on
/// database errors (through `From<Error> for Response`).
type Outcome = Result<Response, Response>;

enum Route<'a> {
    Query,
    Health,
    HealthDb,
    Config,
    PoolStats,
    Notes,
    Note(&'a str),
}

impl Route<'_> {
    fn parse(path: &str) -> Option<Route<'_>> {
        // One trailing slash is tolerated: `/health/` is `/health`.
        let path = match path.strip_suffix('/') {
            Some(p) if !p.is_empty() => p,
            _ => path,
        };
        Some(match path {
            "/query" => Route::Query,
            "/health" => Route::Health,
            "/health/db" => Route::HealthDb,
            "/config" => Route::Config,
            "/pool/stats" => Route::PoolStats,
            "/notes" => Route::Notes,
            _ => match path.strip_prefix("/notes/") {
                Some(id) if !id.is_empty() && !id.contains('/') => Route::Note(id),
                _ => return None,
            },
        })
    }

    fn allow(&self) -> &'static str {
        match self {
            Route::Query => "POST",
            Route::Health | Route::HealthDb | Route::Config | Route::PoolStats => "GET",
            Route::Notes => "GET, POST",
            Route::Note(_) => "GET, DELETE",
        }
    }
}

/// Handles one request.
pub fn handle<B: Backend>(backend: &B, settings: &Settings, req: &Request) -> Response {
    let Some(route) = Route::parse(&req.path) else {
        return with_request_id(error(404, "not found"), req);
    };
    let method = req.method.to_ascii_uppercase();
    let outcome = match (&route, method.as_str()) {
        (Route::Query, "POST") => query(backend, settings, req),
        (Route::Health, "GET") => Ok(json_response(200, &json!({"status": "ok"}))),
        (Route::HealthDb, "GET") => Ok(health_db(backend, settings)),
        (Route::Config, "GET") => config(backend, settings),
        (Route::PoolStats, "GET") => pool_stats(backend, settings),
        (Route::Notes, "GET") => list_notes(backend, settings),
        (Route::Notes, "POST") => create_note(backend, settings, req),
        (Route::Note(id), "GET") => get_note(backend, settings, id),
        (Route::Note(id), "DELETE") => delete_note(backend, settings, id),
        _ => {
            let mut resp = error(405, "method not allowed");
            resp.headers.push(("allow".into(), route.allow().into()));
            Ok(resp)
        }
    };
    with_request_id(outcome.unwrap_or_else(|e| e), req)
}

/// Error bodies carry the host's request id (the `x-request-id` request
/// header), so a client's report can be matched with the host's log.
fn with_request_id(mut resp: Response, req: &Request) -> Response {
    if resp.status < 400 {
        return resp;
    }
    let id = req
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("x-request-id"))
        .map(|(_, value)| value.clone());
    if let (Some(id), Ok(Json::Object(mut body))) = (id, serde_json::from_slice(&resp.body)) {
        body.insert("request_id".into(), Json::String(id));
        if let Ok(bytes) = serde_json::to_vec(&Json::Object(body)) {
            resp.body = bytes;
        }
    }
    resp
}

// ---------------------------------------------------------------------------
// Responses

/// A JSON response with `content-type: application/json`.
pub fn json_response(status: u16, body: &Json) -> Response {
    Response {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::to_vec(body).unwrap_or_default(),
    }
}

/// `{"error": message}`.
pub fn error(status: u16, message: &str) -> Response {
    json_response(status, &json!({ "error": message }))
}

fn bad_request(message: impl Into<String>) -> Response {
    error(400, &message.into())
}

impl From<Error> for Response {
    /// Maps a database error onto a status and an error body. Every body has
    /// `error` (a message) and `kind` (the WIT `error` case).
    fn from(err: Error) -> Response {
        let (status, kind, mut body) = match err {
            Error::QueryFailed(db) => {
                let mut m = Map::new();
                m.insert("error".into(), db.message.into());
                m.insert("code".into(), db.code.into());
                m.insert("severity".into(), db.severity.into());
                if let Some(d) = db.detail {
                    m.insert("detail".into(), d.into());
                }
                if let Some(h) = db.hint {
                    m.insert("hint".into(), h.into());
                }
                (400, "query-failed", m)
            }
            Error::PoolTimeout(p) => {
                let v = json!({
                    "error": "timed out waiting for a database connection",
                    "pool_size": p.pool_size,
                    "max_overflow": p.max_overflow,
                    "checked_out": p.checked_out,
                    "waiting": p.waiting,
                    "waited_ms": p.waited_ms,
                });
                (503, "pool-timeout", into_map(v))
            }
            Error::ConnectionFailed(m) => (503, "connection-failed", message_map(m)),
            Error::BadParameter(m) => (400, "bad-parameter", message_map(m)),
            Error::ValueConversion(m) => (400, "value-conversion", message_map(m)),
            Error::NotAllowed(m) => (403, "not-allowed", message_map(m)),
            Error::TooLarge(m) => (400, "too-large", message_map(m)),
            Error::Timeout(m) => (504, "timeout", message_map(m)),
        };
        body.insert("kind".into(), kind.into());
        let mut resp = json_response(status, &Json::Object(body));
        if kind == "pool-timeout" {
            resp.headers.push(("retry-after".into(), "1".into()));
        }
        resp
    }
}

fn message_map(message: String) -> Map<String, Json> {
    let mut m = Map::new();
    m.insert("error".into(), message.into());
    m
}

fn into_map(v: Json) -> Map<String, Json> {
    match v {
        Json::Object(m) => m,
        _ => Map::new(),
    }
}

// ---------------------------------------------------------------------------
// Request bodies

fn json_object(req: &Request) -> Result<Map<String, Json>, Response> {
    match serde_json::from_slice::<Json>(&req.body) {
        Ok(Json::Object(m)) => Ok(m),
        Ok(_) => Err(bad_request("request body must be a JSON object")),
        Err(e) => Err(bad_request(format!("invalid JSON body: {e}"))),
    }
}

fn string_field<'a>(obj: &'a Map<String, Json>, key: &str) -> Result<&'a str, Response> {
    match obj.get(key) {
        Some(Json::String(s)) => Ok(s),
        Some(_) => Err(bad_request(format!("`{key}` must be a string"))),
        None => Err(bad_request(format!("missing `{key}`"))),
    }
}

// ---------------------------------------------------------------------------
// Seed endpoints

fn query<B: Backend>(backend: &B, settings: &Settings, req: &Request) -> Outcome {
    let body = json_object(req)?;
    let sql = string_field(&body, "sql")?;
    if sql.trim().is_empty() {
        return Err(bad_request("`sql` must not be empty"));
    }
    let params: Vec<Value> = match body.get("params") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(a)) => a.iter().map(param_from_json).collect(),
        Some(_) => return Err(bad_request("`params` must be an array")),
    };

    let db = backend.open(&settings.database)?;
    let tx = db.begin(TransactionOptions {
        isolation: IsolationLevel::ReadCommitted,
        read_only: true,
        statement_timeout_ms: settings.statement_timeout_ms,
    })?;
    let result = tx.query(sql, &params);
    // Read only: nothing to commit. A failed rollback does not change the
    // answer (the host discards the connection either way).
    let _ = tx.rollback();
    let rows = result?;

    let columns: Vec<Json> = rows.columns.iter().map(|c| c.name.clone().into()).collect();
    let row_count = rows.rows.len();
    let out_rows: Vec<Json> = rows
        .rows
        .into_iter()
        .map(|row| Json::Array(row.into_iter().map(value_to_json).collect()))
        .collect();
    Ok(json_response(
        200,
        &json!({ "columns": columns, "rows": out_rows, "row_count": row_count }),
    ))
}

fn health_db<B: Backend>(backend: &B, settings: &Settings) -> Response {
    let health = match backend.open(&settings.database) {
        Ok(db) => db.health(),
        Err(e) => {
            return json_response(
                503,
                &json!({
                    "database_healthy": false,
                    "status": "disconnected",
                    "error": error_message(&e),
                }),
            );
        }
    };
    if health.healthy {
        json_response(
            200,
            &json!({"database_healthy": true, "status": "connected"}),
        )
    } else {
        let reason = health
            .error
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| "database unreachable".into());
        json_response(
            503,
            &json!({"database_healthy": false, "status": "disconnected", "error": reason}),
        )
    }
}

fn config<B: Backend>(backend: &B, settings: &Settings) -> Outcome {
    let c = backend.open(&settings.database)?.pool_config();
    Ok(json_response(
        200,
        &json!({
            "name": c.name,
            "url": c.url,
            "pool_size": c.pool_size,
            "max_overflow": c.max_overflow,
            "pool_timeout": c.pool_timeout_seconds,
            "pool_recycle": c.pool_recycle_seconds,
            "pool_pre_ping": c.pool_pre_ping,
            "lazy_init": c.lazy_init,
        }),
    ))
}

fn pool_stats<B: Backend>(backend: &B, settings: &Settings) -> Outcome {
    let s = backend.open(&settings.database)?.pool_stats();
    Ok(json_response(
        200,
        &json!({
            "size": s.size,
            "checked_in": s.checked_in,
            "checked_out": s.checked_out,
            "overflow": s.overflow,
            "total": s.total,
            "waiting": s.waiting,
        }),
    ))
}

/// A short message for any database error.
pub fn error_message(e: &Error) -> String {
    match e {
        Error::QueryFailed(DbError { message, .. }) => message.clone(),
        Error::PoolTimeout(_) => "timed out waiting for a database connection".into(),
        Error::ConnectionFailed(m)
        | Error::BadParameter(m)
        | Error::ValueConversion(m)
        | Error::NotAllowed(m)
        | Error::TooLarge(m)
        | Error::Timeout(m) => m.clone(),
    }
}

// ---------------------------------------------------------------------------
// Notes

pub const UNDEFINED_TABLE: &str = "42P01";
pub const CREATE_NOTES: &str = "CREATE TABLE IF NOT EXISTS notes (id bigserial primary key, \
    title text not null, body text not null, created_at timestamptz not null default now())";
pub const INSERT_NOTE: &str =
    "INSERT INTO notes (title, body) VALUES ($1, $2) RETURNING id, title, body, created_at";
pub const SELECT_NOTE: &str = "SELECT id, title, body, created_at FROM notes WHERE id = $1";
pub const LIST_NOTES: &str =
    "SELECT id, title, body, created_at FROM notes ORDER BY id DESC LIMIT 50";
pub const DELETE_NOTE: &str = "DELETE FROM notes WHERE id = $1";
pub const MAX_TITLE_CHARS: usize = 200;

fn is_code(e: &Error, code: &str) -> bool {
    matches!(e, Error::QueryFailed(db) if db.code == code)
}

fn note_not_found() -> Response {
    error(404, "note not found")
}

fn note_id(raw: &str) -> Result<i64, Response> {
    raw.parse::<i64>().map_err(|_| {
        json_response(
            400,
            &json!({"error": "note id must be a 64-bit integer", "id": raw}),
        )
    })
}

fn create_note<B: Backend>(backend: &B, settings: &Settings, req: &Request) -> Outcome {
    let body = json_object(req)?;
    let title = string_field(&body, "title")?;
    let text = string_field(&body, "body")?;
    let n = title.chars().count();
    if n == 0 || n > MAX_TITLE_CHARS {
        return Err(bad_request(format!(
            "`title` must be 1 to {MAX_TITLE_CHARS} characters"
        )));
    }
    let params = [Value::Text(title.into()), Value::Text(text.into())];
    let db = backend.open(&settings.database)?;
    let note = match insert_note(&db, settings, &params) {
        Err(e) if is_code(&e, UNDEFINED_TABLE) => {
            create_notes_table(&db)?;
            insert_note(&db, settings, &params)?
        }
        other => other?,
    };
    let mut resp = json_response(201, &note);
    if let Some(id) = note.get("id") {
        resp.headers
            .push(("location".into(), format!("/notes/{id}")));
    }
    Ok(resp)
}

/// INSERT ... RETURNING in a read-write transaction; the note as JSON.
fn insert_note<D: Db>(db: &D, settings: &Settings, params: &[Value]) -> Result<Json, Error> {
    let tx = db.begin(TransactionOptions {
        isolation: IsolationLevel::ReadCommitted,
        read_only: false,
        statement_timeout_ms: settings.statement_timeout_ms,
    })?;
    let rows = match tx.query(INSERT_NOTE, params) {
        Ok(rows) => rows,
        Err(e) => {
            let _ = tx.rollback();
            return Err(e);
        }
    };
    tx.commit()?;
    let columns = rows.columns;
    match rows.rows.into_iter().next() {
        Some(row) => Ok(row_to_object(&columns, row)),
        None => Err(Error::ValueConversion(
            "INSERT ... RETURNING returned no row".into(),
        )),
    }
}

/// `CREATE TABLE IF NOT EXISTS notes`. Two of these racing can fail with a
/// unique violation on the catalog (23505) or "relation already exists"
/// (42P07): either means the table is there now.
fn create_notes_table<D: Db>(db: &D) -> Result<(), Error> {
    match db.execute(CREATE_NOTES, &[]) {
        Ok(_) => Ok(()),
        Err(e) if is_code(&e, "23505") || is_code(&e, "42P07") => Ok(()),
        Err(e) => Err(e),
    }
}

fn get_note<B: Backend>(backend: &B, settings: &Settings, raw_id: &str) -> Outcome {
    let id = note_id(raw_id)?;
    let db = backend.open(&settings.database)?;
    let rows = match db.query(SELECT_NOTE, &[Value::Int64(id)]) {
        Err(e) if is_code(&e, UNDEFINED_TABLE) => return Err(note_not_found()),
        other => other?,
    };
    let columns = rows.columns;
    match rows.rows.into_iter().next() {
        Some(row) => Ok(json_response(200, &row_to_object(&columns, row))),
        None => Err(note_not_found()),
    }
}

fn list_notes<B: Backend>(backend: &B, settings: &Settings) -> Outcome {
    let db = backend.open(&settings.database)?;
    let notes: Vec<Json> = match db.query(LIST_NOTES, &[]) {
        Err(e) if is_code(&e, UNDEFINED_TABLE) => Vec::new(),
        other => {
            let rows = other?;
            let columns = rows.columns;
            rows.rows
                .into_iter()
                .map(|row| row_to_object(&columns, row))
                .collect()
        }
    };
    Ok(json_response(200, &json!({ "notes": notes })))
}

fn delete_note<B: Backend>(backend: &B, settings: &Settings, raw_id: &str) -> Outcome {
    let id = note_id(raw_id)?;
    let db = backend.open(&settings.database)?;
    let n = match db.execute(DELETE_NOTE, &[Value::Int64(id)]) {
        Err(e) if is_code(&e, UNDEFINED_TABLE) => 0,
        other => other?,
    };
    if n == 0 {
        return Err(note_not_found());
    }
    Ok(Response {
        status: 204,
        headers: vec![("content-type".into(), "application/json".into())],
        body: Vec::new(),
    })
}
