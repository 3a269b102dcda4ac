//! howl: a log and metrics pipeline built for alerting.
//!
//! A topology of sources → transforms → sinks, described in TOML, runs on a
//! backpressured async scheduler. The crate is a layered house: each
//! top-level module may use the modules of the layers below it, never those
//! above (`ARCHITECTURE.md` draws it; `tests/it/layers.rs` enforces it).
//! Bottom up:
//!
//! 1. primitives: [`event`], [`component_key`], [`diagnostic`], [`options`],
//!    [`secret`], [`template`], [`vrl_program`], and [`patterns`] (the miner,
//!    a library on its own);
//! 2. [`internal_events`]: the metrics every component emits;
//! 3. [`buffer`]: bounded buffers and fanout between components;
//! 4. [`http`]: the HTTP client core (retry, rate limit, redaction, auth),
//!    and the server loop of howl's two HTTP servers;
//! 5. [`state`]: the embedded store under `data_dir`;
//! 6. the alerting domain: [`llm`] (classifiers), [`alert`] (the alert
//!    model), [`suppressions`] (operators' decisions), [`shared`] (what the
//!    topology and the API share);
//! 7. [`components`]: the contracts every component fulfils, and the
//!    registry of types;
//! 8. the components: [`sources`], [`transforms`], [`sinks`], and [`nats`]
//!    and [`fleet`] (triage state shared through NATS);
//! 9. [`config`]: TOML → validated definitions, handed a registry;
//! 10. [`topology`]: build, wire, run, shut down;
//! 11. the front: [`api`], [`unit_test`], [`cli`].
pub mod alert;
pub mod api;
pub mod buffer;
pub mod cli;
pub mod component_key;
pub mod components;
pub mod config;
pub mod diagnostic;
pub mod event;
pub mod fleet;
pub mod http;
pub mod internal_events;
pub mod llm;
pub mod nats;
pub mod options;
pub mod patterns;
pub mod readiness;
pub mod review;
pub mod secret;
pub mod shared;
pub mod sinks;
pub mod sources;
pub mod state;
pub mod suppressions;
pub mod template;
pub mod topology;
pub mod transforms;
pub mod unit_test;
pub mod vrl_program;
