//! The application listener: routes requests to guest components by the
//! manifest, with body-size, concurrency and header-time limits, and a
//! graceful shutdown.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::bindings::exports::tarn::postgres::handler;
use crate::config::HttpSettings;
use crate::http::reply::{self, Body};
use crate::metrics::RequestMetrics;
use crate::route::Router;
use crate::runtime::{InvokeError, Runtime};

/// The largest request line plus headers accepted (64 KiB).
const MAX_HEAD_BYTES: usize = 64 << 10;

/// What the application listener serves with.
pub struct App {
    /// Loaded components.
    pub runtime: Runtime,
    /// Routes from the manifest.
    pub router: Router,
    /// Request metrics (shared with the admin listener).
    pub metrics: Arc<RequestMetrics>,
    /// Limits.
    pub settings: HttpSettings,
    /// Per-component body limits that override `settings.max_body_bytes`.
    body_limits: HashMap<String, usize>,
    in_flight: Semaphore,
    next_id: AtomicU64,
    id_prefix: u32,
}

impl App {
    /// Wraps a runtime and router for serving; `body_limits` maps component
    /// ids to their own request body limits.
    pub fn new(
        runtime: Runtime,
        router: Router,
        metrics: Arc<RequestMetrics>,
        settings: HttpSettings,
        body_limits: HashMap<String, usize>,
    ) -> App {
        let id_prefix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() ^ (d.as_secs() as u32));
        App {
            in_flight: Semaphore::new(settings.max_concurrent_requests),
            runtime,
            router,
            metrics,
            settings,
            body_limits,
            next_id: AtomicU64::new(1),
            id_prefix,
        }
    }

    /// Handles one HTTP request.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let seq = self.next_id.fetch_add(1, Ordering::Relaxed);
        let request_id = format!("{:08x}-{seq:08x}", self.id_prefix);
        let path = req.uri().path().to_string();
        let (response, route) = self.dispatch(req, seq, &request_id).await;
        let status = response.status().as_u16();
        let latency = started.elapsed();
        self.metrics
            .record(route.as_deref().unwrap_or("(unmatched)"), status, latency);
        tracing::debug!(
            request_id,
            path,
            status,
            latency_us = latency.as_micros() as u64,
            "request"
        );
        response
    }

    async fn dispatch(
        &self,
        req: Request<Incoming>,
        seq: u64,
        request_id: &str,
    ) -> (Response<Body>, Option<String>) {
        let Some(matched) = self.router.route(req.uri().path()) else {
            return (
                reply::error(
                    StatusCode::NOT_FOUND,
                    "no route matches this path",
                    request_id,
                ),
                None,
            );
        };
        let component = matched.component.to_string();
        let route = matched.route.to_string();
        let Ok(_permit) = self.in_flight.try_acquire() else {
            let response = reply::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is at its limit of concurrent requests; retry later",
                request_id,
            );
            return (response, Some(route));
        };
        let max_body = self
            .body_limits
            .get(&component)
            .copied()
            .unwrap_or(self.settings.max_body_bytes);
        let request =
            match guest_request(req, max_body, self.settings.body_read_timeout, request_id).await {
                Ok(r) => r,
                Err((status, message)) => {
                    return (reply::error(status, &message, request_id), Some(route));
                }
            };
        let response = match self.runtime.invoke(&component, seq, request).await {
            Ok(guest) => reply::from_guest(guest, request_id).unwrap_or_else(|why| {
                tracing::warn!(request_id, component, "invalid guest response: {why}");
                reply::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the component returned an invalid response",
                    request_id,
                )
            }),
            Err(e) => invoke_error(&e, &component, request_id),
        };
        (response, Some(route))
    }
}

fn invoke_error(e: &InvokeError, component: &str, request_id: &str) -> Response<Body> {
    tracing::warn!(request_id, component, "request failed: {e}");
    let (status, message) = match e {
        InvokeError::Deadline(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            "the component did not answer in time",
        ),
        InvokeError::CpuLimit(_) => (
            StatusCode::GATEWAY_TIMEOUT,
            "the component exceeded its CPU time limit",
        ),
        InvokeError::MemoryLimit(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the component exceeded its memory limit",
        ),
        InvokeError::Capacity(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no capacity for another instance; retry later",
        ),
        InvokeError::Trap(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the component failed while handling the request",
        ),
        InvokeError::BadResponse(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the component returned an invalid response",
        ),
        InvokeError::UnknownComponent(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the route's component is not loaded",
        ),
    };
    reply::error(status, message, request_id)
}

/// Reads a request into the guest's form, enforcing the body's size limit
/// and read timeout. The guest sees the request id as the `x-request-id`
/// header (replacing any the client sent), so it can put it in its own
/// error bodies.
async fn guest_request(
    req: Request<Incoming>,
    max_body: usize,
    body_timeout: Duration,
    request_id: &str,
) -> Result<handler::Request, (StatusCode, String)> {
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than the limit of {max_body} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        return Err(too_large());
    }
    let (parts, body) = req.into_parts();
    let mut headers = Vec::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        if name == reply::REQUEST_ID {
            continue;
        }
        let value = value.to_str().map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                format!("the value of header `{name}` is not visible ASCII"),
            )
        })?;
        headers.push((name.as_str().to_string(), value.to_string()));
    }
    headers.push((reply::REQUEST_ID.to_string(), request_id.to_string()));
    // A client that stops sending its body would otherwise hold the
    // request (and its concurrency permit) for as long as it likes.
    let collected =
        tokio::time::timeout(body_timeout, Limited::new(body, max_body).collect()).await;
    let body: Bytes = match collected {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Err(too_large());
        }
        Ok(Err(e)) => {
            return Err((
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            ));
        }
        Err(_) => {
            return Err((
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} ms",
                    body_timeout.as_millis()
                ),
            ));
        }
    };
    Ok(handler::Request {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers,
        body: body.to_vec(),
    })
}

/// Serves `handle` on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish for up to `grace`.
pub async fn serve<F, Fut>(
    listener: TcpListener,
    header_read_timeout: Duration,
    grace: Duration,
    handle: F,
    shutdown: impl Future<Output = ()>,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer): (_, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let handle = handle.clone();
        let service = service_fn(move |req| {
            let handle = handle.clone();
            async move { Ok::<_, Infallible>(handle(req).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .max_buf_size(MAX_HEAD_BYTES)
            // The buffer limit alone lets a head that arrives in one read
            // through; this one holds for every request: 431 beyond it.
            .max_header_size(MAX_HEAD_BYTES)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace of {grace:?} passed with requests still in flight");
    }
}
