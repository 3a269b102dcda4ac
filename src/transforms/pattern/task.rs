//! The running `pattern` transform: one miner per scope, persisted, with
//! periodic change reports, storms, and spike and silence alerts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use vrl::path::OwnedValuePath;
use vrl::value::{KeyString, ObjectMap, Value};

use super::anomaly::{
    Expects, RateSettings, Rates, SavedRates, SavedSilences, SilenceChange, Silences, Unheard,
    silence_event, spike_event,
};
use super::report::{Change, ReportSettings, Windows};
use super::storm::{StormScope, StormSettings, StormWindow, storm_event};
use super::{ANOMALIES_OUTPUT, CHANGES_OUTPUT, NEW_OUTPUT, STORM_OUTPUT};
use crate::components::ComponentFuture;
use crate::components::transform::{TaskContext, TaskTransform, TransformOutput};
use crate::event::Event;
use crate::internal_events::{ComponentMetrics, ErrorType, Stage};
use crate::nats::kv::SharedNats;
use crate::nats::pattern_spaces::{Save, SpaceLink};
use crate::patterns::{Miner, MinerConfig, Observation, PatternId};
use crate::state::StateStore;
use crate::state::patterns::{
    FieldsSeen, load_fields, load_rates, load_silences, load_spaces, load_storm, restore,
    save_fields, save_rates, save_saved_at, save_silences, save_snapshots, save_storms,
    snapshot_bytes,
};
use crate::template::Template;

mod fleet;

/// Everything the task needs from the options.
pub struct Settings {
    /// The state-store namespace (the component id).
    pub namespace: String,
    /// The field to mine.
    pub field: OwnedValuePath,
    /// The field holding a level, if any.
    pub level_field: Option<OwnedValuePath>,
    /// The scope template, if any.
    pub scope: Option<Template>,
    /// The miner settings.
    pub miner: MinerConfig,
    /// The most scopes.
    pub max_scopes: usize,
    /// Change reports.
    pub report: ReportSettings,
    /// Storm grouping.
    pub storm: StormSettings,
    /// Spike detection.
    pub rates: RateSettings,
    /// Expected patterns.
    pub expects: Arc<Expects>,
    /// The wall-clock time at start; `None`: now. (Tests set it to start a
    /// run later than the last, on a paused clock.)
    pub clock_start: Option<DateTime<Utc>>,
}

/// Wall-clock time measured on tokio's clock from the start: anomalies
/// are timed like the rest of the task (tests pause it), and saved as wall
/// times so that they mean something to the next run.
struct WallClock {
    start_ms: i64,
    at: Instant,
}

impl WallClock {
    fn new(start: Option<DateTime<Utc>>) -> Self {
        Self {
            start_ms: start.unwrap_or_else(Utc::now).timestamp_millis(),
            at: Instant::now(),
        }
    }

    fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.at.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.start_ms.saturating_add(elapsed)
    }

    fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp_millis(self.now_ms()).unwrap_or_else(Utc::now)
    }
}

/// The scope that takes scope values beyond `max_scopes`.
const OVERFLOW_SCOPE: &str = "_overflow";
/// Save within this long of a new pattern.
const SAVE_NEW_AFTER: Duration = Duration::from_secs(1);
/// Save changed counts at least this often.
const SAVE_EVERY: Duration = Duration::from_secs(30);

/// The transform, ready to run.
pub struct PatternTask {
    settings: Settings,
}

impl PatternTask {
    /// Prepares the transform.
    pub fn new(settings: Settings) -> Self {
        Self { settings }
    }
}

struct Space {
    miner: Miner,
    windows: Windows,
    dirty: bool,
    /// The top-level field names of a sample of the events (for the
    /// review's schema drift).
    fields: FieldsSeen,
    /// Events since the last sampled one.
    unsampled: u32,
    /// The `.pattern` objects of this space's patterns, made once.
    objects: PatternObjects,
    /// New patterns in the current storm window.
    storm: StormWindow,
    /// Rates and spikes.
    rates: Rates,
    /// The revision of the fleet's copy this space continues from (`None`:
    /// started here, or no fleet).
    base: Option<u64>,
    /// When this space was last saved, here or (when it was loaded from
    /// the fleet) by the instance that saved it (Unix ms).
    saved_at_ms: i64,
    /// Loaded from the fleet since the last save: the local store should
    /// have it, the fleet has it already.
    reloaded: bool,
}

impl Space {
    /// A space of `miner` with nothing seen yet beside it.
    fn fresh(miner: Miner, rates: Rates) -> Self {
        Self {
            miner,
            windows: Windows::default(),
            dirty: true,
            fields: FieldsSeen::default(),
            unsampled: FIELD_SAMPLE,
            objects: PatternObjects::default(),
            storm: StormWindow::default(),
            rates,
            base: None,
            saved_at_ms: 0,
            reloaded: false,
        }
    }
}

/// The `.pattern` object of each pattern, made once and copied onto its
/// events: formatting the id and copying the template for every event
/// cost more than mining the line. Only `new`, `count` and `level` change
/// from event to event; the template is compared (a short `memcmp`) and
/// remade when the pattern generalised.
#[derive(Default)]
struct PatternObjects {
    by_id: HashMap<PatternId, PatternObject>,
}

struct PatternObject {
    /// The template the object holds.
    template: Bytes,
    /// When the pattern the object was made for was created: a pattern the
    /// miner evicted and then made again from the same line has the same
    /// id (it is a hash of that line) but a new `first_seen`.
    first_seen_ms: i64,
    object: ObjectMap,
}

impl PatternObjects {
    /// The `.pattern` object for an event of `observation`. The cache is
    /// emptied when it holds `limit` objects (patterns the miner evicted
    /// leave theirs behind), so memory stays bounded by the miner's.
    fn object(
        &mut self,
        observation: &Observation<'_>,
        scope: Option<&str>,
        limit: usize,
    ) -> ObjectMap {
        let template = observation.template.as_bytes();
        // The length first: the lookup is needed only when the cache is full.
        if self.by_id.len() >= limit && !self.by_id.contains_key(&observation.id) {
            self.by_id.clear();
        }
        let cached = self
            .by_id
            .entry(observation.id)
            .or_insert_with(|| PatternObject::new(observation, scope));
        if cached.first_seen_ms != observation.first_seen_ms {
            *cached = PatternObject::new(observation, scope);
        }
        if cached.template.as_ref() != template {
            cached.template = Bytes::copy_from_slice(template);
            cached.object.insert(
                KeyString::from("template"),
                Value::Bytes(cached.template.clone()),
            );
        }
        let mut object = cached.object.clone();
        let count = Value::Integer(observation.count.min(i64::MAX as u64) as i64);
        let level = Value::Bytes(Bytes::from_static(observation.level.as_str().as_bytes()));
        for (key, value) in [
            ("new", Value::Boolean(observation.is_new)),
            ("count", count),
            ("level", level),
        ] {
            if let Some(slot) = object.get_mut(key) {
                *slot = value;
            }
        }
        object
    }
}

impl PatternObject {
    fn new(observation: &Observation<'_>, scope: Option<&str>) -> Self {
        let template = Bytes::copy_from_slice(observation.template.as_bytes());
        let mut object = ObjectMap::new();
        object.insert(
            KeyString::from("id"),
            Value::from(observation.id.to_string()),
        );
        object.insert(KeyString::from("template"), Value::Bytes(template.clone()));
        // Filled in for each event.
        object.insert(KeyString::from("new"), Value::Boolean(false));
        object.insert(KeyString::from("count"), Value::Integer(0));
        object.insert(KeyString::from("level"), Value::Null);
        object.insert(
            KeyString::from("first_seen"),
            timestamp(observation.first_seen_ms),
        );
        if let Some(scope) = scope {
            object.insert(KeyString::from("scope"), Value::from(scope));
        }
        if let Some(parent) = observation.parent {
            object.insert(KeyString::from("parent"), Value::from(parent.to_string()));
        }
        Self {
            template,
            first_seen_ms: observation.first_seen_ms,
            object,
        }
    }
}

/// One event in this many has its field names noted: schema drift is
/// about fields that stay or go, not single events, and noting every
/// event's names would cost more than mining its line.
const FIELD_SAMPLE: u32 = 16;

struct State {
    settings: Settings,
    spaces: HashMap<String, Space>,
    store: Arc<StateStore>,
    new_since_save: bool,
    last_save: Instant,
    window_start: DateTime<Utc>,
    metrics: Arc<ComponentMetrics>,
    silences: Silences,
    clock: WallClock,
    /// The link to the fleet's shared spaces, with `[state.shared]`.
    fleet: Option<SpaceLink>,
}

impl TaskTransform for PatternTask {
    fn run(self: Box<Self>, mut cx: TaskContext) -> ComponentFuture {
        Box::pin(async move {
            let store = cx.state.store()?;
            let mut spaces = HashMap::new();
            for saved in load_spaces(&store, Some(&self.settings.namespace))? {
                let scope = saved.scope.clone();
                let miner = restore(&self.settings.miner, saved)?;
                let fields = load_fields(&store, &self.settings.namespace, &scope)?;
                // Patterns held when howl stopped without flushing (a
                // crash) come out in this run's first storm.
                let storm: StormWindow = load_storm(&store, &self.settings.namespace, &scope)?;
                let rates: SavedRates = load_rates(&store, &self.settings.namespace, &scope)?;
                let rates = Rates::restore(
                    rates,
                    &miner,
                    &self.settings.expects,
                    (&self.settings.namespace, &scope),
                    &self.settings.rates,
                );
                spaces.insert(
                    scope,
                    Space {
                        miner,
                        windows: Windows::default(),
                        dirty: false,
                        fields,
                        unsampled: 0,
                        objects: PatternObjects::default(),
                        storm,
                        rates,
                        base: None,
                        saved_at_ms: 0,
                        reloaded: false,
                    },
                );
            }
            let known: usize = spaces.values().map(|s| s.miner.len()).sum();
            if known > 0 {
                tracing::info!(component = %cx.key, patterns = known, scopes = spaces.len(), "loaded known patterns");
            }
            let clock = WallClock::new(self.settings.clock_start);
            let saved: SavedSilences = load_silences(&store, &self.settings.namespace)?;
            let silences = Silences::restore(
                saved,
                &self.settings.expects,
                &self.settings.namespace,
                clock.now_ms(),
            );
            warn_unheard(&self.settings.expects, &spaces, &cx.key.to_string());
            let report_interval = self.settings.report.interval;
            let mut state = State {
                settings: self.settings,
                spaces,
                store,
                new_since_save: false,
                last_save: Instant::now(),
                window_start: Utc::now(),
                metrics: Arc::clone(&cx.metrics),
                silences,
                clock,
                fleet: None,
            };
            if let Some(shared) = cx.state.fleet::<SharedNats>() {
                state.join_fleet(shared).await?;
            }
            let mut save_tick = tokio::time::interval(SAVE_NEW_AFTER);
            let mut report_tick = tokio::time::interval(if report_interval.is_zero() {
                Duration::from_secs(3600)
            } else {
                report_interval
            });
            report_tick.tick().await;
            let storms = state.settings.storm.enabled();
            // Each scope's window ends on its own: check a tenth of a
            // window at a time (100 ms to 1 s), so a storm comes out at most
            // that late.
            let mut storm_tick = tokio::time::interval(if storms {
                (state.settings.storm.window / 10)
                    .clamp(Duration::from_millis(100), Duration::from_secs(1))
            } else {
                Duration::from_secs(3600)
            });
            storm_tick.tick().await;
            if !storms {
                // Patterns held by an earlier run that grouped storms and
                // crashed inside a window are known by now: this is their
                // only announcement.
                let mut out = cx.outputs.collector(0);
                state.storms(&mut out, true);
                cx.outputs.send(out).await;
            }
            let mut rate_tick = tokio::time::interval(state.settings.rates.window);
            rate_tick.tick().await;
            let expects = !state.settings.expects.is_empty();
            loop {
                tokio::select! {
                    batch = cx.input.recv() => match batch {
                        Some(events) => {
                            // Another instance's saves, before mining more
                            // lines of their scopes.
                            state.take_fleet_updates();
                            let mut out = cx.outputs.collector(events.len());
                            state.mine(events, &mut out);
                            cx.outputs.send(out).await;
                        }
                        None => break,
                    },
                    _ = save_tick.tick() => {
                        // Silences are checked every second: that is their
                        // resolution.
                        if expects {
                            let mut out = cx.outputs.collector(0);
                            state.check_silences(&mut out);
                            cx.outputs.send(out).await;
                        }
                        state.take_fleet_updates();
                        state.save_if_due();
                    }
                    _ = rate_tick.tick() => {
                        let mut out = cx.outputs.collector(0);
                        state.roll_rates(&mut out);
                        cx.outputs.send(out).await;
                    }
                    _ = report_tick.tick(), if !report_interval.is_zero() => {
                        let mut out = cx.outputs.collector(0);
                        state.report(&mut out);
                        cx.outputs.send(out).await;
                    }
                    _ = storm_tick.tick(), if storms => {
                        let mut out = cx.outputs.collector(0);
                        state.storms(&mut out, false);
                        cx.outputs.send(out).await;
                    }
                }
            }
            // Held patterns are announced, not lost, when the input ends.
            if storms {
                let mut out = cx.outputs.collector(0);
                state.storms(&mut out, true);
                cx.outputs.send(out).await;
            }
            state.save();
            if let Some(link) = state.fleet.take() {
                link.finish(fleet::FINISH_LIMIT).await;
            }
            Ok(())
        })
    }
}

impl State {
    fn mine(&mut self, events: Vec<Event>, out: &mut TransformOutput) {
        let now = Utc::now();
        let now_ms = now.timestamp_millis();
        let mut new_patterns = 0;
        let scoped = self.settings.scope.is_some();
        let limit = self.settings.miner.max_patterns.saturating_mul(2);
        let storm = self.settings.storm;
        let expects = Arc::clone(&self.settings.expects);
        let seen_ms = self.clock.now_ms();
        for mut event in events {
            let Some(text) = event
                .get(&self.settings.field)
                .filter(|value| !value.is_null())
                .map(value_text)
            else {
                // Nothing to mine (a metric, an event of another shape, a
                // null): pass it on untouched.
                out.push(event);
                continue;
            };
            let scope = self.scope_of(&event);
            let hint = self
                .settings
                .level_field
                .as_ref()
                .and_then(|path| event.get(path))
                .filter(|value| !value.is_null())
                .map(value_text);
            let space = self.space(&scope);
            space.unsampled += 1;
            if space.unsampled >= FIELD_SAMPLE {
                space.unsampled = 0;
                if let Some(object) = event.value().as_object() {
                    space.fields.note(object.keys().map(|k| k.as_str()), now_ms);
                }
            }
            let observation = space.miner.observe(&text, hint.as_deref(), now_ms);
            space.windows.record(observation.id, observation.is_new);
            let expected = space.rates.record(&observation, &expects, &scope);
            space.dirty = true;
            let pattern =
                space
                    .objects
                    .object(&observation, scoped.then_some(scope.as_str()), limit);
            let is_new = observation.is_new;
            let to_new = is_new
                && space.storm.admit(
                    &storm,
                    observation.id,
                    observation.template,
                    observation.level,
                    seen_ms,
                );
            let id = observation.id;
            drop(text);
            if let Some(index) = expected {
                self.silences.seen(index, &scope, id, seen_ms);
            }
            event.insert_field("pattern", Value::Object(pattern));
            if is_new {
                new_patterns += 1;
            }
            if to_new {
                out.push_named(NEW_OUTPUT, event.clone());
            }
            out.push(event);
        }
        if new_patterns > 0 {
            self.new_since_save = true;
        }
        let live: usize = self.spaces.values().map(|s| s.miner.len()).sum();
        let evictions: u64 = self.spaces.values().map(|s| s.miner.evictions()).sum();
        self.metrics.pattern_stats(new_patterns, live, evictions);
    }

    fn scope_of(&self, event: &Event) -> String {
        let Some(template) = &self.settings.scope else {
            return String::new();
        };
        let rendered = template.render(event);
        if !rendered.missing.is_empty() {
            self.metrics.error(
                ErrorType::TemplateFailed,
                Stage::Processing,
                &format_args!(
                    "`scope` refers to missing field(s) {}; using an empty scope",
                    rendered.missing.join(", ")
                ),
            );
        }
        rendered.text
    }

    fn space(&mut self, scope: &str) -> &mut Space {
        // Without `scope` there is one space, named "": found without a
        // hash lookup. Comparing two empty strings calls `memcmp` on
        // dangling pointers, which glibc's AVX-512 `memcmp` turns into a
        // masked load that faults and is replayed by microcode: a tenth
        // of the whole alert path's CPU went there.
        if scope.is_empty()
            && self.spaces.len() == 1
            && self.spaces.keys().next().is_some_and(String::is_empty)
        {
            return self
                .spaces
                .values_mut()
                .next()
                .unwrap_or_else(|| unreachable!("checked just above"));
        }
        let scope = if self.spaces.contains_key(scope)
            || self.spaces.len() < self.settings.max_scopes
        {
            scope
        } else {
            self.metrics.warn_limited(
                "too_many_scopes",
                &format_args!("more than max_scopes ({}) scopes; extra ones share the `{OVERFLOW_SCOPE}` space", self.settings.max_scopes),
            );
            OVERFLOW_SCOPE
        };
        if self.spaces.contains_key(scope) {
            // The common case: no new key to allocate.
            return self
                .spaces
                .get_mut(scope)
                .unwrap_or_else(|| unreachable!("checked just above"));
        }
        let config = &self.settings.miner;
        let component = &self.settings.namespace;
        self.spaces.entry(scope.to_string()).or_insert_with(|| {
            Space::fresh(
                // The config was validated at build time.
                Miner::new(config.clone())
                    .unwrap_or_else(|_| unreachable!("validated at build"))
                    .in_scope(scope),
                Rates::new(component, scope),
            )
        })
    }

    fn save_if_due(&mut self) {
        let since = self.last_save.elapsed();
        let dirty = self.spaces.values().any(|s| s.dirty || s.reloaded) || self.silences.dirty;
        if dirty && ((self.new_since_save && since >= SAVE_NEW_AFTER) || since >= SAVE_EVERY) {
            self.save();
        }
    }

    fn save(&mut self) {
        let now_ms = Utc::now().timestamp_millis();
        for space in self.spaces.values_mut().filter(|space| space.dirty) {
            space.saved_at_ms = now_ms;
        }
        // Spaces mined here, and spaces loaded from the fleet.
        let changed = |space: &&Space| space.dirty || space.reloaded;
        let mut snapshots: Vec<(&str, Vec<u8>)> = Vec::new();
        for (scope, space) in self.spaces.iter().filter(|(_, space)| changed(space)) {
            match snapshot_bytes(&space.miner) {
                Ok(bytes) => snapshots.push((scope.as_str(), bytes)),
                Err(error) => self.metrics.error(
                    ErrorType::StateSaveFailed,
                    Stage::Processing,
                    &format_args!("cannot save the pattern space `{scope}`: {error}"),
                ),
            }
        }
        if snapshots.is_empty() && !self.silences.dirty {
            return;
        }
        let dirty = snapshots
            .iter()
            .map(|(scope, bytes)| (*scope, bytes.as_slice()));
        let fields: Vec<(&str, &FieldsSeen)> = self
            .spaces
            .iter()
            .filter(|(_, space)| changed(space))
            .map(|(scope, space)| (scope.as_str(), &space.fields))
            .collect();
        let storms: Vec<(&str, &StormWindow)> = self
            .spaces
            .iter()
            .filter(|(_, space)| changed(space))
            .map(|(scope, space)| (scope.as_str(), &space.storm))
            .collect();
        let rates: Vec<(&str, SavedRates)> = self
            .spaces
            .iter()
            .filter(|(_, space)| changed(space))
            .map(|(scope, space)| (scope.as_str(), space.rates.saved(&self.settings.rates)))
            .collect();
        let saved_at: Vec<(&str, &i64)> = match self.fleet {
            Some(_) => self
                .spaces
                .iter()
                .filter(|(_, space)| changed(space))
                .map(|(scope, space)| (scope.as_str(), &space.saved_at_ms))
                .collect(),
            None => Vec::new(),
        };
        let silences = self.silences.dirty.then(|| self.silences.saved());
        let namespace = &self.settings.namespace;
        // Held patterns before the patterns themselves: a crash between the
        // two may announce a pattern twice, never not at all.
        let saved = save_storms(&self.store, namespace, storms)
            .and_then(|()| save_snapshots(&self.store, namespace, dirty))
            .and_then(|()| save_fields(&self.store, namespace, fields))
            .and_then(|()| {
                save_rates(
                    &self.store,
                    namespace,
                    rates.iter().map(|(scope, rates)| (*scope, rates)),
                )
            })
            .and_then(|()| match &silences {
                Some(silences) => save_silences(&self.store, namespace, silences),
                None => Ok(()),
            })
            .and_then(|()| match saved_at.is_empty() {
                true => Ok(()),
                false => save_saved_at(&self.store, namespace, saved_at),
            });
        // The fleet gets what was mined here, whether or not the local
        // store took it.
        if let Some(link) = &self.fleet {
            for (scope, bytes) in snapshots {
                let Some(space) = self.spaces.get(scope).filter(|space| space.dirty) else {
                    continue;
                };
                link.save(Save {
                    scope: scope.to_string(),
                    base: space.base,
                    saved_at_ms: space.saved_at_ms,
                    snapshot: bytes,
                });
            }
        }
        match saved {
            Ok(()) => {
                for space in self.spaces.values_mut() {
                    space.dirty = false;
                    space.reloaded = false;
                }
                self.silences.dirty = false;
                self.new_since_save = false;
            }
            Err(error) => self.metrics.error(
                ErrorType::StateSaveFailed,
                Stage::Processing,
                &format_args!("cannot save the pattern store: {error}"),
            ),
        }
        self.last_save = Instant::now();
    }

    fn report(&mut self, out: &mut TransformOutput) {
        let now = Utc::now();
        let window_start = std::mem::replace(&mut self.window_start, now);
        let mut scopes: Vec<&String> = self.spaces.keys().collect();
        scopes.sort();
        let scopes: Vec<String> = scopes.into_iter().cloned().collect();
        for scope in scopes {
            let Some(space) = self.spaces.get_mut(&scope) else {
                continue;
            };
            let spikes = space.rates.take_reported();
            for change in space.windows.roll(&space.miner, spikes) {
                let event = change_event(
                    &change,
                    &scope,
                    self.settings.scope.is_some(),
                    window_start,
                    now,
                );
                out.push_named(CHANGES_OUTPUT, event);
            }
        }
    }
}

impl State {
    /// Ends the storm windows that have lasted their time (`all`: every
    /// open one, as the input ends): one event per scope that held
    /// patterns.
    fn storms(&mut self, out: &mut TransformOutput, all: bool) {
        let now_ms = self.clock.now_ms();
        let now = self.clock.now();
        let window = self.settings.storm.window;
        let scoped = self.settings.scope.is_some();
        let mut scopes: Vec<&String> = self.spaces.keys().collect();
        scopes.sort();
        let scopes: Vec<String> = scopes.into_iter().cloned().collect();
        for scope in scopes {
            let Some(space) = self.spaces.get_mut(&scope) else {
                continue;
            };
            if !all && !space.storm.is_due(window, now_ms) {
                continue;
            }
            let start = space
                .storm
                .opened_ms()
                .and_then(DateTime::<Utc>::from_timestamp_millis)
                .unwrap_or(now);
            // The emptied window is saved too, or a restart would send
            // this storm again.
            if !space.storm.is_empty() {
                space.dirty = true;
                self.new_since_save = true;
            }
            let Some(storm) = space.storm.roll(&space.miner) else {
                continue;
            };
            self.metrics.pattern_storm(storm.count);
            out.push_named(
                STORM_OUTPUT,
                storm_event(
                    &storm,
                    &StormScope {
                        component: &self.settings.namespace,
                        scope: scoped.then_some(scope.as_str()),
                        start,
                        end: now,
                    },
                ),
            );
        }
    }
}

impl State {
    /// Ends the rate bucket: the spikes that fire or resolve, saved before
    /// they are sent (a crash then loses at most an event, never the
    /// knowledge that a spike fires).
    fn roll_rates(&mut self, out: &mut TransformOutput) {
        let now = self.clock.now();
        let now_ms = now.timestamp_millis();
        let report = !self.settings.report.interval.is_zero();
        let mut events = Vec::new();
        for (scope, space) in &mut self.spaces {
            let changes = space
                .rates
                .roll(&space.miner, &self.settings.rates, now_ms, report);
            // Baselines are saved with the space's next save (after its
            // next line): an idle pipeline does not rewrite its store every
            // bucket for baselines that only decayed.
            if !changes.is_empty() {
                space.dirty = true;
            }
            for change in changes {
                self.metrics
                    .pattern_anomaly("spike", if change.firing { "firing" } else { "resolved" });
                events.push(spike_event(&change, scope, &self.settings.rates, now));
            }
        }
        self.send_saved(events, out);
    }

    /// Checks the expectations: the silences that fire or resolve, saved
    /// before they are sent.
    fn check_silences(&mut self, out: &mut TransformOutput) {
        let now = self.clock.now();
        let changes = self
            .silences
            .check(&self.settings.expects, now.timestamp_millis());
        let events: Vec<Event> = changes
            .iter()
            .map(|change: &SilenceChange| {
                self.metrics
                    .pattern_anomaly("silence", if change.firing { "firing" } else { "resolved" });
                let about = change.last.as_ref().and_then(|(scope, id)| {
                    let view = self.spaces.get(scope)?.miner.get(*id)?;
                    Some((view.template, view.level))
                });
                silence_event(change, about, now)
            })
            .collect();
        self.send_saved(events, out);
    }

    /// Saves, then sends `events` on `ID.anomalies`.
    fn send_saved(&mut self, events: Vec<Event>, out: &mut TransformOutput) {
        if events.is_empty() {
            return;
        }
        self.save();
        for event in events {
            out.push_named(ANOMALIES_OUTPUT, event);
        }
    }
}

/// Warns of expectations that no known pattern feeds (see
/// [`Expects::unheard`]).
fn warn_unheard(expects: &Expects, spaces: &HashMap<String, Space>, component: &str) {
    if expects.is_empty() {
        return;
    }
    let patterns = spaces.iter().flat_map(|(scope, space)| {
        space
            .miner
            .patterns()
            .map(move |view| (view.id, view.template, scope.as_str()))
    });
    for (index, why) in expects.unheard(patterns) {
        let expect = &expects.0[index];
        let every = expect.every.as_secs();
        match why {
            Unheard::NoMatch => tracing::warn!(
                component,
                expectation = %expect.label,
                "`expect` matches no known pattern yet; unless a matching line comes, its silence alert fires after {every}s",
            ),
            Unheard::Shadowed => tracing::warn!(
                component,
                expectation = %expect.label,
                "`expect` matches only patterns that an earlier `expect` takes (the first that matches a pattern gets its lines); its silence alert fires after {every}s; put the narrower one first",
            ),
        }
    }
}

/// A change as an event: `.change` says what happened, `.pattern` which
/// pattern (so alert sinks' defaults work on it), `message` says it in words.
fn change_event(
    change: &Change,
    scope: &str,
    scoped: bool,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Event {
    let window_secs = ((end - start).num_milliseconds().max(0) + 500) / 1000;
    let message = match change.kind {
        super::report::Kind::New => format!("new log pattern: {}", change.template),
        super::report::Kind::Gone => format!(
            "log pattern gone ({} lines in the previous window, none in the last {window_secs}s): {}",
            change.baseline, change.template
        ),
        super::report::Kind::Spike => format!(
            "log pattern spiking ({} lines in the last {window_secs}s, {} in the window before): {}",
            change.count, change.baseline, change.template
        ),
    };
    let mut details = ObjectMap::new();
    details.insert(KeyString::from("kind"), Value::from(change.kind.as_str()));
    details.insert(
        KeyString::from("pattern_id"),
        Value::from(change.id.to_string()),
    );
    details.insert(
        KeyString::from("template"),
        Value::from(change.template.as_str()),
    );
    details.insert(
        KeyString::from("count"),
        Value::Integer(change.count as i64),
    );
    details.insert(
        KeyString::from("baseline_count"),
        Value::Integer(change.baseline as i64),
    );
    details.insert(KeyString::from("window_start"), Value::Timestamp(start));
    details.insert(KeyString::from("window_end"), Value::Timestamp(end));
    details.insert(KeyString::from("window_secs"), Value::Integer(window_secs));
    let mut pattern = ObjectMap::new();
    pattern.insert(KeyString::from("id"), Value::from(change.id.to_string()));
    pattern.insert(
        KeyString::from("template"),
        Value::from(change.template.as_str()),
    );
    pattern.insert(KeyString::from("level"), Value::from(change.level));
    if scoped {
        details.insert(KeyString::from("scope"), Value::from(scope));
        pattern.insert(KeyString::from("scope"), Value::from(scope));
    }
    let mut event = Event::from_value(Value::from(message));
    event.insert_field("timestamp", end);
    event.insert_field("change", Value::Object(details));
    event.insert_field("pattern", Value::Object(pattern));
    event
}

/// A field's value as the text to mine.
fn value_text(value: &Value) -> std::borrow::Cow<'_, str> {
    match value {
        Value::Bytes(bytes) => String::from_utf8_lossy(bytes),
        other => match other.to_str_lossy() {
            Some(text) => text,
            None => std::borrow::Cow::Owned(other.to_string_lossy().into_owned()),
        },
    }
}

fn timestamp(ms: i64) -> Value {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(at) => Value::Timestamp(at),
        None => Value::from(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patterns::Level;

    fn observation(id: u64, template: &str, count: u64) -> Observation<'_> {
        Observation {
            id: PatternId::from_u64(id),
            is_new: count == 1,
            changed: false,
            template,
            count,
            first_seen_ms: 1_700_000_000_000,
            level: Level::Error,
            parent: None,
            slot: 0,
        }
    }

    fn text<'a>(object: &'a ObjectMap, key: &str) -> std::borrow::Cow<'a, str> {
        object[key].to_string_lossy()
    }

    #[test]
    fn pattern_objects_follow_the_template_and_the_event() {
        let mut objects = PatternObjects::default();
        let first = objects.object(&observation(7, "user bob logged in", 1), None, 10);
        assert_eq!(text(&first, "id"), "0000000000000007");
        assert_eq!(text(&first, "template"), "user bob logged in");
        assert_eq!(first["new"], Value::Boolean(true));
        assert_eq!(first["count"], Value::Integer(1));
        assert_eq!(text(&first, "level"), "error");
        assert!(matches!(first["first_seen"], Value::Timestamp(_)));
        assert!(!first.contains_key("scope"));
        // The pattern generalised: the same id carries the new template.
        let later = objects.object(&observation(7, "user <*> logged in", 2), None, 10);
        assert_eq!(text(&later, "template"), "user <*> logged in");
        assert_eq!(later["new"], Value::Boolean(false));
        assert_eq!(later["count"], Value::Integer(2));
        // What was handed out before is the event's own copy.
        assert_eq!(text(&first, "template"), "user bob logged in");
        let scoped = objects.object(&observation(8, "disk full", 1), Some("db"), 10);
        assert_eq!(text(&scoped, "scope"), "db");
        assert!(!scoped.contains_key("parent"));
        // A pattern split off another names it.
        let split = Observation {
            parent: Some(PatternId::from_u64(7)),
            ..observation(9, "session started by client beta", 1)
        };
        let split = objects.object(&split, None, 10);
        assert_eq!(text(&split, "parent"), "0000000000000007");
    }

    #[test]
    fn a_pattern_made_again_after_its_eviction_has_its_new_first_seen() {
        let mut objects = PatternObjects::default();
        let old = objects.object(&observation(7, "disk full", 1), None, 10);
        // Evicted by the miner, then created again from the same line: the
        // same id, a later creation time, counted from 1.
        let again = Observation {
            first_seen_ms: 1_800_000_000_000,
            ..observation(7, "disk full", 1)
        };
        let new = objects.object(&again, None, 10);
        assert_ne!(old["first_seen"], new["first_seen"]);
        assert_eq!(new["first_seen"], timestamp(1_800_000_000_000));
        assert_eq!(new["count"], Value::Integer(1));
    }

    #[test]
    fn pattern_objects_stay_bounded() {
        let mut objects = PatternObjects::default();
        for id in 0..25 {
            objects.object(&observation(id, "a line", 1), None, 10);
            assert!(objects.by_id.len() <= 10, "{}", objects.by_id.len());
        }
    }

    mod storms {
        use crate::components::registry::WithShared;
        use crate::components::transform::{Transform, TransformConfig};
        use crate::event::Event;
        use crate::patterns::MinerConfig;
        use crate::shared::Shared;
        use crate::state::StateHandle;
        use crate::transforms::pattern::PatternConfig;
        use crate::transforms::pattern::storm::tests::letters;
        use crate::transforms::task_harness::{Harness, context};
        use std::time::Duration;
        use vrl::value::Value;

        fn start(options: &str, dir: &tempfile::TempDir) -> Harness {
            let config = WithShared::<PatternConfig, MinerConfig>::from_toml(options).unwrap();
            let Transform::Task(task) = config.build(&context(options)).unwrap() else {
                panic!("a task transform")
            };
            Harness::run(
                task,
                config.outputs(),
                &["new", "storm"],
                Shared::with_state(StateHandle::new(dir.path().to_path_buf())),
            )
        }

        /// A line of a pattern of its own (`i`-th), in `service` at `level`.
        fn line(i: usize, service: &str, level: &str) -> Event {
            let x = letters(i);
            Event::from_value(vrl::value!({
                "message": (format!("{x}alpha {x}beta {x}gamma {x}delta")),
                "service": service,
                "level": level,
            }))
        }

        fn get(event: &Event, path: &str) -> Value {
            event
                .get(&vrl::path::parse_value_path(path).unwrap())
                .cloned()
                .unwrap_or_else(|| panic!("no {path} in {event:?}"))
        }

        const OPTIONS: &str = "scope = '{{ .service }}'\nlevel_field = '.level'\n";

        /// Five new patterns with `storm_threshold = 2`, then a `kill -9`
        /// before the window ends: three were held and nothing flushed.
        /// Restarted with `after`, the held ones come out in one storm
        /// within `within_ms`, and once saved, never again.
        async fn held_at_a_crash_come_out_once(after: &str, within_ms: u64) {
            let dir = tempfile::tempdir().unwrap();
            let options = format!("{OPTIONS}storm_threshold = 2\nstorm_window_secs = 3\n");
            let wait = |ms| tokio::time::sleep(Duration::from_millis(ms));
            let mut h = start(&options, &dir);
            h.send((0..5).map(|i| line(i, "checkout", "info")).collect())
                .await;
            wait(300).await;
            assert_eq!(h.take(Some("new")).len(), 2);
            // Past the save interval (1 s), before the window's end (3 s).
            wait(1600).await;
            assert!(h.take(Some("storm")).is_empty());
            h.crash().await;

            let after = format!("{OPTIONS}{after}");
            let mut h = start(&after, &dir);
            wait(within_ms).await;
            let storms = h.take(Some("storm"));
            assert_eq!(storms.len(), 1, "the held patterns come out");
            assert_eq!(get(&storms[0], "storm.count"), Value::Integer(3));
            // Sent once: once saved, a restart has nothing held.
            wait(1600).await;
            h.crash().await;
            let h = start(&after, &dir);
            wait(within_ms).await;
            let out = h.finish().await;
            assert!(
                out.named.get("storm").is_none_or(|s| s.is_empty()),
                "the storm was not sent again"
            );
        }

        #[tokio::test(start_paused = true)]
        async fn patterns_held_at_a_crash_come_out_in_the_next_run_s_storm_once() {
            held_at_a_crash_come_out_once("storm_threshold = 2\nstorm_window_secs = 3\n", 3600)
                .await;
        }

        /// Grouping turned off (`storm_threshold = 0`) after such a crash:
        /// the held patterns are known, so they would never be announced
        /// unless the restart sends their storm, at start.
        #[tokio::test(start_paused = true)]
        async fn patterns_held_at_a_crash_come_out_when_storms_are_then_off() {
            held_at_a_crash_come_out_once("storm_threshold = 0\n", 1600).await;
        }

        /// A deploy that began 8 s into a run with 10 s windows: with
        /// windows on a fixed beat it straddled two, let twice the
        /// threshold through and split into two storms.
        #[tokio::test(start_paused = true)]
        async fn a_window_opens_with_the_scope_s_first_new_pattern() {
            let dir = tempfile::tempdir().unwrap();
            let options = format!("{OPTIONS}storm_threshold = 3\nstorm_window_secs = 10\n");
            let wait = |secs| tokio::time::sleep(Duration::from_secs(secs));
            let mut h = start(&options, &dir);
            wait(8).await;
            h.send((0..4).map(|i| line(i, "checkout", "info")).collect())
                .await;
            wait(4).await;
            h.send((4..8).map(|i| line(i, "checkout", "info")).collect())
                .await;
            h.settle().await;
            assert_eq!(h.take(Some("new")).len(), 3, "one window, one threshold");
            assert!(h.take(Some("storm")).is_empty(), "the window opened at 8 s");
            wait(5).await;
            assert!(h.take(Some("storm")).is_empty(), "17 s: still open");
            wait(3).await;
            let storms = h.take(Some("storm"));
            assert_eq!(storms.len(), 1, "one storm, 10 s after the first pattern");
            assert_eq!(get(&storms[0], "storm.count"), Value::Integer(5));
            // Checked each second: it ends within one of its time.
            let secs = get(&storms[0], "storm.window_secs");
            assert!(
                secs == Value::Integer(10) || secs == Value::Integer(11),
                "{secs:?}"
            );
            // The next new pattern opens a window of its own.
            h.send((8..12).map(|i| line(i, "checkout", "info")).collect())
                .await;
            h.settle().await;
            assert_eq!(h.take(Some("new")).len(), 3);
            let out = h.finish().await;
            let storms = out.named.get("storm").cloned().unwrap_or_default();
            assert_eq!(storms.len(), 1, "the input's end rolls the open window");
            assert_eq!(get(&storms[0], "storm.count"), Value::Integer(1));
        }

        #[tokio::test(start_paused = true)]
        async fn a_storm_is_one_event_and_other_scopes_and_errors_are_unaffected() {
            let dir = tempfile::tempdir().unwrap();
            let mut h = start(OPTIONS, &dir);
            let mut batch: Vec<Event> = (0..150).map(|i| line(i, "checkout", "info")).collect();
            // The most frequent of the held ones.
            batch.extend((0..3).map(|_| line(20, "checkout", "info")));
            // A warning among them: first in the top.
            batch.push(line(1000, "checkout", "warn"));
            // Errors are exempt, before and after the threshold.
            batch.push(line(2000, "checkout", "error"));
            batch.extend((0..5).map(|i| line(3000 + i, "search", "info")));
            h.send(batch).await;
            h.settle().await;
            let new = h.take(Some("new"));
            let scope_of = |e: &Event| get(e, "pattern.scope").to_string_lossy().into_owned();
            let checkout: Vec<&Event> = new.iter().filter(|e| scope_of(e) == "checkout").collect();
            assert_eq!(checkout.len(), 11, "10 and the error");
            assert!(
                checkout
                    .iter()
                    .any(|e| get(e, "pattern.level") == Value::from("error"))
            );
            assert_eq!(new.len() - checkout.len(), 5, "another scope is unaffected");
            assert!(
                h.take(Some("storm")).is_empty(),
                "held until the window ends"
            );
            // Every line still goes on, marked new.
            let all = h.take(None);
            assert_eq!(all.len(), 160);
            assert_eq!(
                all.iter()
                    .filter(|e| get(e, "pattern.new") == Value::Boolean(true))
                    .count(),
                157
            );

            tokio::time::sleep(Duration::from_secs(60)).await;
            let storms = h.next(Some("storm")).await;
            assert_eq!(storms.len(), 1, "one storm, in one scope");
            let storm = &storms[0];
            assert_eq!(get(storm, "storm.count"), Value::Integer(141));
            assert_eq!(get(storm, "storm.scope"), Value::from("checkout"));
            let Value::Array(ids) = get(storm, "storm.pattern_ids") else {
                panic!("ids")
            };
            assert_eq!(ids.len(), 141);
            let text = |value: Value| value.to_string_lossy().into_owned();
            let held: std::collections::HashSet<String> = ids.into_iter().map(text).collect();
            assert_eq!(held.len(), 141);
            assert!(
                checkout
                    .iter()
                    .all(|e| !held.contains(&text(get(e, "pattern.id")))),
                "a pattern is held or passed, not both"
            );
            assert_eq!(get(storm, "storm.truncated"), Value::Boolean(false));
            assert_eq!(get(storm, "storm.top[0].level"), Value::from("warn"));
            assert_eq!(get(storm, "storm.top[1].count"), Value::Integer(4));
            assert_eq!(
                get(storm, "storm.top[1].template"),
                Value::from("ualpha ubeta ugamma udelta")
            );
            let Value::Array(top) = get(storm, "storm.top") else {
                panic!("top")
            };
            assert_eq!(top.len(), 5);
            let message = get(storm, "message").to_string_lossy().into_owned();
            assert!(
                message.starts_with("storm: 141 new patterns in ")
                    && message.contains(" from checkout; top: [warn] "),
                "{message}"
            );
            assert_eq!(get(storm, "alert.name"), Value::from("HowlPatternStorm"));
            assert_eq!(get(storm, "alert.key"), Value::from("t.storm/checkout"));

            // A new window starts fresh: 10 pass again, the rest are held.
            h.send((200..215).map(|i| line(i, "checkout", "info")).collect())
                .await;
            h.settle().await;
            assert_eq!(h.take(Some("new")).len(), 10);
            // A window with no storm says nothing; the input's end flushes
            // what is held.
            let out = h.finish().await;
            let storms = &out.named["storm"];
            assert_eq!(storms.len(), 1);
            assert_eq!(get(&storms[0], "storm.count"), Value::Integer(5));
        }

        #[tokio::test(start_paused = true)]
        async fn storms_can_be_turned_off_and_exemptions_too() {
            let dir = tempfile::tempdir().unwrap();
            let h = start(&format!("{OPTIONS}storm_threshold = 0\n"), &dir);
            h.send((0..30).map(|i| line(i, "a", "info")).collect())
                .await;
            let out = h.finish().await;
            assert_eq!(out.named["new"].len(), 30);
            assert!(out.named["storm"].is_empty());

            let dir = tempfile::tempdir().unwrap();
            let h = start(
                &format!("{OPTIONS}storm_threshold = 2\nstorm_exempt_level = 'none'\n"),
                &dir,
            );
            h.send((0..5).map(|i| line(i, "a", "fatal")).collect())
                .await;
            let out = h.finish().await;
            assert_eq!(out.named["new"].len(), 2);
            assert_eq!(
                get(&out.named["storm"][0], "storm.count"),
                Value::Integer(3)
            );
        }
    }
}
