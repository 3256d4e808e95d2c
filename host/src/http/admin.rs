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
pub async fn handle(req: Request<Incoming>, databases: &Databases, metrics: &RequestMetrics) -> Response<Body> {
    if req.method() != Method::GET {
        return reply::text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into(), "text/plain");
    }
    match req.uri().path() {
        "/livez" | "/healthz" => reply::text(StatusCode::OK, "ok\n".into(), "text/plain"),
        "/readyz" => readiness(databases).await,
        "/metrics" => reply::text(
            StatusCode::OK,
            metrics.render(databases),
            "text/plain; version=0.0.4",
        ),
        _ => reply::text(
            StatusCode::NOT_FOUND,
            "admin endpoints: /livez /readyz /metrics\n".into(),
            "text/plain",
        ),
    }
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
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = serde_json::json!({ "ready": ready, "databases": report });
    reply::text(status, body.to_string(), "application/json")
}
