//! Prometheus metrics. Every crate records through the `metrics` facade with the names
//! below; [`install`] puts the Prometheus recorder behind the facade, and [`serve`]
//! answers `GET /metrics` on a listener of its own (kept off the public port: it shows
//! traffic per route class and security events).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

use crate::routes::RouteClass;

pub const HTTP_REQUESTS: &str = "stormcom_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "stormcom_http_request_duration_seconds";
pub const ALERTS_RAISED: &str = "stormcom_alerts_raised_total";

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Histogram,
}

/// One metric family: its name, help text, and — when every value of its one label is
/// known up front — those values, so each series exists at zero before the first event
/// (a dashboard's `rate()` then starts from zero instead of from nothing).
struct Family {
    name: &'static str,
    kind: Kind,
    help: &'static str,
    zero: Zero,
}

enum Zero {
    /// Label values appear only with events (statuses, quotas, reasons).
    Unknown,
    Unlabelled,
    Label(&'static str, &'static [&'static str]),
}

const CLASSES: [&str; RouteClass::ALL.len()] = {
    let mut names = [""; RouteClass::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = RouteClass::ALL[i].as_str();
        i += 1;
    }
    names
};

const FAMILIES: &[Family] = &[
    Family {
        name: HTTP_REQUESTS,
        kind: Kind::Counter,
        help: "HTTP requests answered, by route class and status code.",
        zero: Zero::Unknown,
    },
    Family {
        name: HTTP_REQUEST_DURATION,
        kind: Kind::Histogram,
        help: "Time from request received to response ready, by route class.",
        zero: Zero::Unknown,
    },
    Family {
        name: "stormcom_rate_limited_total",
        kind: Kind::Counter,
        help: "Requests refused by a rate limit, by route class.",
        zero: Zero::Label("class", &CLASSES),
    },
    Family {
        name: "stormcom_quota_rejections_total",
        kind: Kind::Counter,
        help: "Requests refused because a plan quota is used up, by quota.",
        zero: Zero::Unknown,
    },
    Family {
        name: "stormcom_failed_logins_total",
        kind: Kind::Counter,
        help: "Failed sign-in proofs, by kind (password, totp, step_up, api_token).",
        zero: Zero::Label("kind", &["password", "totp", "step_up", "api_token"]),
    },
    Family {
        name: "stormcom_account_lockouts_total",
        kind: Kind::Counter,
        help: "Accounts locked after repeated failed sign-ins.",
        zero: Zero::Unlabelled,
    },
    Family {
        name: ALERTS_RAISED,
        kind: Kind::Counter,
        help: "Monitoring alerts raised, by kind.",
        zero: Zero::Label(
            "kind",
            &[
                "discount_velocity",
                "inventory_drift",
                "failed_login_spike",
                "payment_mismatch",
                "payment_for_closed_order",
                "payment_for_other_intent",
                "refund_mismatch",
                "refund_exceeds_captured",
            ],
        ),
    },
    Family {
        name: "stormcom_payment_callbacks_rejected_total",
        kind: Kind::Counter,
        help: "Payment gateway callbacks refused, by reason.",
        zero: Zero::Unknown,
    },
];

/// Request latency buckets, in seconds: 1 ms to the 30 s request timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs the Prometheus recorder as the process-wide `metrics` recorder and creates
/// every known series at zero. Fails if a recorder is already installed.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(HTTP_REQUEST_DURATION.to_owned()), LATENCY_BUCKETS)?
        .install_recorder()?;
    for family in FAMILIES {
        match family.kind {
            Kind::Counter => metrics::describe_counter!(family.name, family.help),
            Kind::Histogram => metrics::describe_histogram!(family.name, metrics::Unit::Seconds, family.help),
        }
        match family.zero {
            Zero::Unlabelled => metrics::counter!(family.name).absolute(0),
            Zero::Label(label, values) => {
                for value in values {
                    metrics::counter!(family.name, label => *value).absolute(0);
                }
            }
            Zero::Unknown => {}
        }
    }
    Ok(handle)
}

/// The exposition text. Families with no series yet (their label values are only known
/// when they happen) still get their `HELP` and `TYPE` lines, so every family is listed
/// from the first scrape.
#[must_use]
pub fn render(handle: &PrometheusHandle) -> String {
    let mut text = handle.render();
    for family in FAMILIES {
        let kind = match family.kind {
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        };
        if !text.contains(&format!("# TYPE {} ", family.name)) {
            text.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n",
                name = family.name,
                help = family.help
            ));
        }
    }
    text
}

/// The metrics endpoint alone: `GET /metrics`.
pub fn router(handle: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                    )],
                    render(&handle),
                )
                    .into_response()
            }
        }),
    )
}

/// Serves `/metrics` on its own listener until `shutdown`, running the recorder's
/// upkeep (which bounds histogram memory between scrapes) meanwhile.
pub async fn serve(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let upkeep = {
        let handle = handle.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(Duration::from_secs(5));
            loop {
                ticker.tick().await;
                handle.run_upkeep();
            }
        })
    };
    let limits = crate::server::Limits {
        max_connections: 16,
        ..crate::server::Limits::default()
    };
    let served = crate::server::serve(listener, router(handle), limits, shutdown).await;
    upkeep.abort();
    served
}

/// Where the metrics listener binds, as given by an operator: an address, or `off`.
pub fn parse_listen(value: &str) -> Result<Option<SocketAddr>, String> {
    match value.trim() {
        "" | "off" | "none" | "disabled" => Ok(None),
        address => address
            .parse()
            .map(Some)
            .map_err(|_| format!("'{address}' is not an address like 127.0.0.1:9090 (or 'off')")),
    }
}
