//! What the HTTP layer measures, and where it is read. Every request is counted and timed by
//! labels drawn from fixed sets — the method as one of `GET`/`POST`/`HEAD`/`other`, the route as
//! the matched path or `unmatched`, our own status codes — so no request, authenticated or not,
//! can add a series. `/metrics` is served on a listener of its own (`--metrics-listen`, loopback
//! by default), never beside `/execute`: it tells refusals apart, which is for operators only.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum_server::accept::DefaultAcceptor;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;

use super::ApiError;
use super::limits::{self, ConnectionLimit};

/// Scrapers are few; a handful of connections is plenty and keeps the listener cheap to hold.
const METRICS_CONNECTIONS: usize = 32;
/// A scraper sends its request at once.
const METRICS_HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The method as a label: the ones the contract uses by name, every other spelling as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        _ => "other",
    }
}

/// Count requests by method, matched route and status, and time them by route.
pub(super) async fn record_request_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = method_label(request.method());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("bidder_http_requests_total", "method" => method, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("bidder_http_request_seconds", "route" => route).record(started.elapsed().as_secs_f64());
    response
}

/// The Prometheus endpoint alone: `GET /metrics`, anything else 404 in our error format.
fn metrics_router(handle: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(|State(handle): State<PrometheusHandle>| async move { handle.render() }))
        .fallback(|| async { ApiError::NotFound.into_response() })
        .with_state(handle)
}

/// Serve `/metrics` on `listener` until the process stops (plain HTTP: it is meant for a
/// loopback or pod-network scraper).
pub async fn serve_metrics(listener: TcpListener, handle: PrometheusHandle) -> std::io::Result<()> {
    let server = axum_server::from_tcp(listener.into_std()?)?.acceptor(ConnectionLimit::new(
        DefaultAcceptor,
        METRICS_CONNECTIONS,
        "metrics",
    ));
    limits::with_timeouts(server, METRICS_HEADER_TIMEOUT).serve(metrics_router(handle).into_make_service()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_method_becomes_one_of_four_labels() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::HEAD), "HEAD");
        for other in ["PUT", "DELETE", "OPTIONS", "RANDOM1", "X-Y"] {
            assert_eq!(method_label(&Method::from_bytes(other.as_bytes()).unwrap()), "other", "{other}");
        }
    }
}
