//! The baselines: the sample app's endpoints served natively by hyper (no Wasm) with one of
//! four connection strategies. Each runs as its own process (`tarn-bench serve`), like tarn,
//! so every target gets the same treatment from the load generator.

pub mod connections;
pub mod endpoints;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub use connections::{Connections, Strategy};

/// Largest request body read (tarn's default limit).
const MAX_BODY: usize = 1 << 20;

/// Serves the endpoints with `strategy` on `listen` until the process is killed. Prints
/// `listening on ADDR` on stdout once it accepts connections.
pub async fn serve(strategy: Strategy, database_url: &str, listen: SocketAddr) -> Result<()> {
    let pg: tokio_postgres::Config = database_url.parse().context("parse the database URL")?;
    let conns = Arc::new(Connections::new(strategy, pg).await?);
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listen on {listen}"))?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let conns = Arc::clone(&conns);
        let service = service_fn(move |req: Request<hyper::body::Incoming>| {
            let conns = Arc::clone(&conns);
            async move { Ok::<_, Infallible>(answer(&conns, req).await) }
        });
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(conns: &Connections, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let (status, body) = match Limited::new(body, MAX_BODY).collect().await {
        Ok(body) => {
            endpoints::handle(
                conns,
                parts.method.as_str(),
                parts.uri.path(),
                &body.to_bytes(),
            )
            .await
        }
        Err(_) => (
            413,
            Bytes::from_static(br#"{"error":"body too large or unreadable"}"#),
        ),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
