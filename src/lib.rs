//! howl: a log and metrics pipeline built for alerting.
//!
//! A topology of sources → transforms → sinks, described in TOML, runs on a
//! backpressured async scheduler. The crate is organised by concern (see
//! `ARCHITECTURE` notes in the README):
//!
//! - [`config`]: TOML → validated topology description, with positioned errors.
//! - [`topology`]: build, wire (bounded buffers, fanout), run, shut down.
//! - [`event`]: the event type and delivery status (finalizers).
//! - [`sources`], [`transforms`], [`sinks`]: the components, one module each.
//! - [`internal_events`]: the metrics every component emits.
//! - [`state`]: the embedded store under `data_dir`.
//! - [`llm`]: classifiers of log patterns (LLM providers, the built-in one).
//! - [`suppressions`]: operators' suppressions, shared by API and transforms.
//! - [`shared`]: what the running topology and the API share.
//! - [`template`]: `{{ .field }}` rendering shared by sinks.
//! - [`unit_test`]: `[[tests]]` in a config, run by `howl test`.
//! - [`api`], [`cli`]: the HTTP API and the command line.

pub mod api;
pub mod cli;
pub mod components;
pub mod config;
pub mod duration;
pub mod event;
pub mod internal_events;
pub mod llm;
pub mod patterns;
pub mod shared;
pub mod sinks;
pub mod sources;
pub mod state;
pub mod suppressions;
pub mod template;
pub mod topology;
pub mod transforms;
pub mod unit_test;
