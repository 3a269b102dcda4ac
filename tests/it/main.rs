//! howl's integration tests, in one binary: each module tests one area
//! end to end, through the real `howl` binary or the library's public API,
//! with real peers on loopback (Alertmanager, Prometheus) or loopback
//! servers that speak a peer's exact wire protocol (Telegram, Slack, LLM
//! providers). One binary links the crate once instead of once per file.

mod common;
mod fake_slack;
mod fake_telegram;

mod alert_scenario;
mod alert_webhook;
mod alertmanager;
mod chaos;
mod chat_actions;
mod config_tests;
mod decoding;
mod docs;
mod file_source;
mod fleet;
mod fleet_ids;
mod fluent;
mod generate;
mod http_client;
mod http_server;
mod interpolation;
mod layers;
mod llm_failover;
mod llm_suppress;
mod loki;
mod loki_query;
mod metric_sources;
mod nats;
mod nats_partitions;
mod opentelemetry;
mod packaging;
mod pattern_accuracy;
mod pattern_anomalies;
mod pattern_fleet;
mod pattern_transform;
mod patterns_cli;
mod patterns_train;
mod pipeline;
mod progress;
mod reload;
mod review;
mod shared_state;
mod slack;
mod slow_clients;
mod sql;
mod syslog;
mod tap;
mod telegram;
mod threshold;
mod throttle_dedupe;
mod top;
mod validate;
mod webhook;
