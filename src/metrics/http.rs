//! `/metrics` over the shared minimal HTTP server (`crate::http`), at most
//! `limits::metrics::CONNECTIONS_MAX` scrapes at once, each bounded in bytes
//! read and in time.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tracing::info;

use super::{exposition, MetricsSources};
use crate::http::{self, percent_decode, status_only, Bounds, HttpServer, Request};
use crate::limits::metrics as bounds;

/// The one path ZooKeeper's provider serves (`context.addServlet(..., "/metrics")`).
pub const METRICS_PATH: &str = "/metrics";

/// The running endpoint; `stop` ends its accept thread and waits for it
/// (scrapes in progress finish on their own within `CONNECTION_DEADLINE`).
/// Dropping it ends the thread without waiting.
pub struct MetricsServer {
    server: HttpServer,
}

impl MetricsServer {
    /// Binds `addr` (failing if it cannot, as ZooKeeper's provider does) and
    /// starts serving.
    pub fn start(addr: SocketAddr, sources: MetricsSources) -> io::Result<MetricsServer> {
        let limits = Bounds {
            connections_max: bounds::CONNECTIONS_MAX,
            head_bytes_max: bounds::REQUEST_HEAD_BYTES_MAX,
            deadline: bounds::CONNECTION_DEADLINE,
            accept_poll: bounds::ACCEPT_POLL_INTERVAL,
        };
        let handler = Arc::new(move |req: &mut Request<'_>| respond(req, &sources).into());
        let server = HttpServer::start("metrics", addr, limits, handler)?;
        info!(
            "serving Prometheus metrics on http://{}{METRICS_PATH}",
            server.addr()
        );
        Ok(MetricsServer { server })
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    pub fn stop(self) {
        self.server.stop();
    }
}

/// The reply to one request, as ZooKeeper's Jetty answers: `/metrics`
/// for GET and POST (the Prometheus servlet's doPost is doGet), 404 for any
/// other path (400/505/TRACE are answered by `crate::http`).
fn respond(req: &Request, sources: &MetricsSources) -> Vec<u8> {
    if req.path != METRICS_PATH {
        return status_only(404, "Not Found");
    }
    let only = requested_names(req.query);
    match req.method {
        "GET" | "POST" => metrics_reply(sources, &only, true),
        "HEAD" => metrics_reply(sources, &only, false),
        _ => status_only(405, "Method Not Allowed"),
    }
}

/// The values of `name[]` parameters (the Prometheus servlet's filter).
fn requested_names(query: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .filter(|(key, _)| percent_decode(key) == "name[]")
        .map(|(_, value)| percent_decode(value))
        .collect()
}

fn metrics_reply(sources: &MetricsSources, only: &[String], with_body: bool) -> Vec<u8> {
    let body = exposition::render(sources, only);
    http::reply(
        200,
        "OK",
        exposition::CONTENT_TYPE,
        body.as_bytes(),
        with_body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_parameters_select_families() {
        let names = requested_names("name[]=znode_count&x=1&name%5B%5D=watch%5fcount&name[]");
        assert_eq!(names, ["znode_count", "watch_count"]);
        assert_eq!(percent_decode("a%2"), "a%2");
        assert!(requested_names("").is_empty());
    }
}
