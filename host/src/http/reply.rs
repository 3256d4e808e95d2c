//! Responses tarn writes itself: JSON error bodies with the request id, and
//! conversion of guest responses.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};

use crate::bindings::exports::tarn::postgres::handler;

/// The body type of every response.
pub type Body = Full<Bytes>;

/// The header that carries the request id.
pub const REQUEST_ID: &str = "x-request-id";

/// A JSON error response `{"error": message, "request_id": id}`.
pub fn error(status: StatusCode, message: &str, request_id: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": message, "request_id": request_id });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, id);
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// Converts a guest's response; `Err` names what is invalid in it.
pub fn from_guest(guest: handler::Response, request_id: &str) -> Result<Response<Body>, String> {
    let status =
        StatusCode::from_u16(guest.status).map_err(|_| format!("status {}", guest.status))?;
    let mut response = Response::new(Full::new(Bytes::from(guest.body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in guest.headers {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("header name {name:?}"))?;
        let value = HeaderValue::from_str(&value).map_err(|_| format!("value of header {name}"))?;
        headers.append(name, value);
    }
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, id);
    }
    Ok(response)
}

/// A plain-text response (admin endpoints).
pub fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
