//! Sinks: where events leave howl.
//!
//! A sink's `run` takes batches from its [`SinkInput`] until it closes (every
//! upstream component finished), delivers them, reports each event's fate
//! through its finalizers, flushes, and returns. The buffer in front of it is
//! configured by the common `buffer` options.

pub mod alertmanager;
pub mod batch;
mod blackhole;
pub mod chat;
mod console;
pub mod encoding;
mod file;
mod nats;
mod slack;
mod telegram;
mod webhook;

use crate::components::registry::{ComponentType, component_type};
use crate::components::sink::SinkConfig;
use crate::http::HttpDelivery;

/// Every sink type howl knows.
pub static TYPES: &[ComponentType<dyn SinkConfig>] = &[
    component_type!("alertmanager", alertmanager::AlertmanagerConfig, shared: HttpDelivery),
    component_type!("blackhole", blackhole::BlackholeConfig),
    component_type!("console", console::ConsoleConfig),
    component_type!("file", file::FileSinkConfig),
    component_type!("nats", nats::NatsSinkConfig, shared: crate::nats::NatsConnection),
    component_type!("slack", slack::SlackConfig, shared: HttpDelivery),
    component_type!("telegram", telegram::TelegramConfig, shared: HttpDelivery),
    component_type!("webhook", webhook::WebhookConfig, shared: HttpDelivery),
];
