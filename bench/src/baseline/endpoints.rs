//! The sample guest's benchmarked endpoints, natively: the same statements and round trips
//! as `guest/rust` through tarn (`/query` runs in a read-only transaction with a
//! `statement_timeout`; `/notes` inserts in a read-write one), the same JSON in and out.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value as Json, json};
use tokio_postgres::Row;
use tokio_postgres::types::{ToSql, Type};

use super::connections::Connections;

/// The `statement_timeout` the sample app's manifest sets (`QUERY_STATEMENT_TIMEOUT_MS`).
const STATEMENT_TIMEOUT_MS: u32 = 5000;

/// The sample app's insert.
const INSERT_NOTE: &str =
    "INSERT INTO notes (title, body) VALUES ($1, $2) RETURNING id, title, body, created_at";

/// An answer: status and JSON body.
pub type Answer = (u16, Bytes);

fn json_answer(status: u16, body: &Json) -> Answer {
    (status, Bytes::from(body.to_string()))
}

fn error(status: u16, message: impl std::fmt::Display) -> Answer {
    json_answer(status, &json!({ "error": message.to_string() }))
}

/// Routes one request.
pub async fn handle(conns: &Connections, method: &str, path: &str, body: &[u8]) -> Answer {
    let result = match (method, path) {
        ("GET", "/health") => Ok(json_answer(200, &json!({"status": "ok"}))),
        ("POST", "/query") => query(conns, body).await,
        ("POST", "/notes") => create_note(conns, body).await,
        _ => Ok(error(404, "not found")),
    };
    result.unwrap_or_else(|e| error(503, format!("{e:#}")))
}

fn begin(read_only: bool) -> String {
    let access = if read_only { "READ ONLY" } else { "READ WRITE" };
    format!(
        "BEGIN ISOLATION LEVEL READ COMMITTED {access}; SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"
    )
}

/// A JSON request parameter, typed as the guest types it.
enum Param {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Param {
    fn from_json(v: &Json) -> Param {
        match v {
            Json::Null => Param::Null,
            Json::Bool(b) => Param::Bool(*b),
            Json::Number(n) => n
                .as_i64()
                .map_or_else(|| Param::Float(n.as_f64().unwrap_or(f64::NAN)), Param::Int),
            Json::String(s) => Param::Text(s.clone()),
            other => Param::Text(other.to_string()),
        }
    }

    fn typed(&self) -> (&(dyn ToSql + Sync), Type) {
        match self {
            Param::Null => (&None::<String>, Type::TEXT),
            Param::Bool(b) => (b, Type::BOOL),
            Param::Int(i) => (i, Type::INT8),
            Param::Float(f) => (f, Type::FLOAT8),
            Param::Text(s) => (s, Type::TEXT),
        }
    }
}

async fn query(conns: &Connections, body: &[u8]) -> Result<Answer> {
    let Ok(Json::Object(req)) = serde_json::from_slice::<Json>(body) else {
        return Ok(error(400, "request body must be a JSON object"));
    };
    let Some(Json::String(sql)) = req.get("sql") else {
        return Ok(error(400, "missing `sql`"));
    };
    let params: Vec<Param> = match req.get("params") {
        Some(Json::Array(a)) => a.iter().map(Param::from_json).collect(),
        _ => Vec::new(),
    };
    let conn = conns.lease().await?;
    conn.batch_execute(&begin(true)).await.context("begin")?;
    let typed: Vec<_> = params.iter().map(Param::typed).collect();
    let result = conn.query_typed(sql, &typed).await;
    conn.batch_execute("ROLLBACK").await.context("rollback")?;
    drop(conn);
    let rows = match result {
        Ok(rows) => rows,
        Err(e) => return Ok(error(400, e)),
    };
    let columns: Vec<Json> = match rows.first() {
        Some(row) => row.columns().iter().map(|c| c.name().into()).collect(),
        None => Vec::new(),
    };
    let out: Vec<Json> = rows
        .iter()
        .map(|row| row_values(row).map(Json::Array))
        .collect::<Result<_>>()?;
    Ok(json_answer(
        200,
        &json!({ "columns": columns, "rows": out, "row_count": rows.len() }),
    ))
}

async fn create_note(conns: &Connections, body: &[u8]) -> Result<Answer> {
    let Ok(Json::Object(req)) = serde_json::from_slice::<Json>(body) else {
        return Ok(error(400, "request body must be a JSON object"));
    };
    let (Some(Json::String(title)), Some(Json::String(text))) = (req.get("title"), req.get("body"))
    else {
        return Ok(error(400, "`title` and `body` must be strings"));
    };
    let conn = conns.lease().await?;
    conn.batch_execute(&begin(false)).await.context("begin")?;
    let rows = conn
        .query_typed(INSERT_NOTE, &[(title, Type::TEXT), (text, Type::TEXT)])
        .await;
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            conn.batch_execute("ROLLBACK").await.context("rollback")?;
            return Ok(error(400, e));
        }
    };
    conn.batch_execute("COMMIT").await.context("commit")?;
    drop(conn);
    let Some(row) = rows.first() else {
        bail!("INSERT ... RETURNING returned no row")
    };
    let note: Map<String, Json> = row
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .zip(row_values(row)?)
        .collect();
    Ok(json_answer(201, &Json::Object(note)))
}

/// A row's values as JSON, for the column types the benchmark's queries return.
fn row_values(row: &Row) -> Result<Vec<Json>> {
    row.columns()
        .iter()
        .enumerate()
        .map(|(i, col)| {
            Ok(match *col.type_() {
                Type::INT4 => row.try_get::<_, Option<i32>>(i)?.map(Json::from),
                Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Json::from),
                Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map(Json::from),
                Type::BOOL => row.try_get::<_, Option<bool>>(i)?.map(Json::from),
                Type::TEXT | Type::VARCHAR => row.try_get::<_, Option<String>>(i)?.map(Json::from),
                Type::TIMESTAMPTZ => row
                    .try_get::<_, Option<DateTime<Utc>>>(i)?
                    .map(|t| Json::from(t.to_rfc3339_opts(SecondsFormat::Micros, true))),
                _ => None,
            }
            .unwrap_or(Json::Null))
        })
        .collect()
}
