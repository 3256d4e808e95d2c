//! The admin listener for platform teams: liveness, readiness and
//! Prometheus metrics. It never serves guest code.

use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use crate::database::Databases;
use crate::http::reply::{self, Body};
use crate::metrics::RequestMetrics;

/// How long readiness waits for a database round trip.
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Handles one admin request.
pub async fn handle(
    req: Request<Incoming>,
    databases: &Databases,
    metrics: &RequestMetrics,
) -> Response<Body> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/livez" | "/healthz") => {
            reply::text(StatusCode::OK, "ok\n".into(), "text/plain")
        }
        (&Method::GET, "/readyz") => readiness(databases).await,
        (&Method::GET, "/metrics") => reply::text(
            StatusCode::OK,
            metrics.render(databases),
            "text/plain; version=0.0.4",
        ),
        (&Method::POST, "/reconnect") => reconnect(databases).await,
        _ => reply::text(
            StatusCode::NOT_FOUND,
            "admin endpoints: GET /livez /readyz /metrics, POST /reconnect\n".into(),
            "text/plain",
        ),
    }
}

/// Drops every pool's idle connections and refills them (the seed's
/// `reconnect()`); connections in use are replaced when they come back.
async fn reconnect(databases: &Databases) -> Response<Body> {
    for db in databases.all() {
        db.pool.reconnect().await;
        tracing::info!(database = %db.name, "reconnected on admin request");
    }
    let stats: serde_json::Map<_, _> = databases
        .all()
        .into_iter()
        .map(|db| (db.name.clone(), serde_json::json!(db.pool.stats())))
        .collect();
    reply::text(
        StatusCode::OK,
        serde_json::Value::Object(stats).to_string(),
        "application/json",
    )
}

/// Ready when every eagerly initialised pool is warm and every database
/// answers a round trip.
async fn readiness(databases: &Databases) -> Response<Body> {
    let mut report = serde_json::Map::new();
    let mut ready = true;
    for db in databases.all() {
        let stats = db.pool.stats();
        let config = db.pool.config();
        let warm = config.lazy_init || stats.total >= config.pool_size;
        let reachable = matches!(
            tokio::time::timeout(READY_CHECK_TIMEOUT, db.pool.health_check()).await,
            Ok(Ok(()))
        );
        ready &= warm && reachable;
        report.insert(
            db.name.clone(),
            serde_json::json!({ "warm": warm, "reachable": reachable, "stats": stats }),
        );
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({ "ready": ready, "databases": report });
    reply::text(status, body.to_string(), "application/json")
}
