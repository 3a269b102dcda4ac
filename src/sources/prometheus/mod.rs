//! The Prometheus sources: `prometheus_scrape` reads `/metrics` endpoints
//! (the text exposition format), `prometheus_query` asks a Prometheus
//! server PromQL questions. Both poll on the shared schedule
//! ([`crate::sources::polling`]) and make their requests through the
//! delivery core's retries ([`crate::sources::http_poll`]).
//!
//! - [`exposition`]: the text format parser (pure);
//! - [`api`]: the query API's answers (pure);
//! - `scrape`, `query`: the two sources.

pub mod api;
pub mod exposition;
mod query;
mod scrape;

pub use query::PrometheusQueryConfig;
pub use scrape::PrometheusScrapeConfig;
