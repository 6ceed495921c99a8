//! A real server on 127.0.0.1:0 with the deterministic fake engine behind the trait, for the
//! tests of the HTTP contract, and the small helpers those tests share.

use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use bidder::callback::CallbackPolicy;
use bidder::config::{AuthConfig, Secret, ServerConfig, StrategyConfig};
use bidder::egress::AllowList;
use bidder::engine::fake::FakeGenerator;
use bidder::http::{self, AppState};
use bidder::pipeline::{PhaseRoutes, Pipeline};
use serde_json::Value;
use tokio::sync::oneshot;

use super::{API_KEY, SECRET_CURRENT, SECRET_PENDING};

pub struct TestServer {
    pub url: String,
    /// The metrics listener's base URL (`/metrics` is never served on `url`).
    pub metrics_url: String,
    pub state: AppState,
    pub fake: FakeGenerator,
    pub strategy: StrategyConfig,
    pub stop: Option<oneshot::Sender<()>>,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
}

pub fn server_config() -> ServerConfig {
    ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        auth: AuthConfig {
            api_key: Some(Secret::new(API_KEY)),
            signing_secrets: vec![Secret::new(SECRET_CURRENT), Secret::new(SECRET_PENDING)],
            timestamp_tolerance: Duration::from_secs(300),
        },
        path_prefix: Some("/aitasker".into()),
        agent_slug: "bidder-test".into(),
        capabilities: vec!["writing-translation".into(), "data".into()],
        max_body_bytes: 1024 * 1024,
        drain: Duration::from_secs(5),
        idempotency_ttl: Duration::from_secs(60),
        idempotency_capacity: 100,
        tls: None,
        header_timeout: Duration::from_secs(10),
        body_timeout: Duration::from_secs(30),
        max_connections: 1024,
        max_in_flight: 256,
        // The tests start their own metrics listener on a free port.
        metrics_listen: None,
        callbacks: CallbackPolicy::default(),
    }
}

/// The test configuration, with callbacks allowed to the origins of `urls` (receivers a test
/// runs on 127.0.0.1, which the guard refuses otherwise).
pub fn config_allowing_callbacks(urls: &[&str]) -> ServerConfig {
    let origins: Vec<String> = urls
        .iter()
        .map(|url| {
            let url = reqwest::Url::parse(url).unwrap();
            format!("{}://{}:{}", url.scheme(), url.host_str().unwrap(), url.port_or_known_default().unwrap())
        })
        .collect();
    let callbacks = CallbackPolicy { allow: AllowList::parse(&origins).unwrap(), domains: Vec::new() };
    ServerConfig { callbacks, ..server_config() }
}

impl TestServer {
    /// A server that is not ready yet: call `ready()` to hand it its pipeline.
    pub async fn loading(fake: FakeGenerator, strategy: StrategyConfig, config: ServerConfig) -> Self {
        Self::loading_with_tls(fake, strategy, config, None).await
    }

    /// Like `loading`, serving HTTPS when `tls` is given.
    pub async fn loading_with_tls(
        fake: FakeGenerator,
        strategy: StrategyConfig,
        config: ServerConfig,
        tls: Option<RustlsConfig>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().unwrap());
        let state = AppState::new(config);
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(http::serve(listener, state.clone(), tls, async move {
            let _ = stopped.await;
        }));
        let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_url = format!("http://{}", metrics.local_addr().unwrap());
        tokio::spawn(http::serve_metrics(metrics, bidder::telemetry::metrics_handle()));
        Self { url, metrics_url, state, fake, strategy, stop: Some(stop), server }
    }

    pub fn ready(&self) {
        self.state.set_ready(Pipeline::new(PhaseRoutes::single(Arc::new(self.fake.clone())), self.strategy.clone()));
    }

    pub async fn start(fake: FakeGenerator) -> Self {
        Self::start_with(fake, server_config()).await
    }

    /// A ready server with `config`.
    pub async fn start_with(fake: FakeGenerator, config: ServerConfig) -> Self {
        let server = Self::loading(fake, StrategyConfig::default(), config).await;
        server.ready();
        server
    }

    /// The text of `/metrics`, from the metrics listener.
    pub async fn metrics(&self) -> String {
        client().get(format!("{}/metrics", self.metrics_url)).send().await.unwrap().text().await.unwrap()
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

pub async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")))
}

pub fn assert_error(status: u16, body: &Value, expected_status: u16, expected_code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"], expected_code, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.len() > 10), "detail must be a sentence: {body}");
    assert_eq!(body.as_object().unwrap().len(), 2, "only error and detail: {body}");
}
