//! What every simulator's handlers share: the world behind its one lock, the live faults,
//! the stop signal and where each simulator listens.

use crate::faults::FaultSet;
use crate::scripted::ScriptedState;
use crate::simulator::BUILT_IN;
use crate::world::World;
use crate::Urls;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use std::any::Any;
use std::sync::{Mutex, OnceLock};
use tokio::sync::watch;

pub(crate) struct Shared {
    world: Mutex<World>,
    pub(crate) faults: FaultSet,
    pub(crate) stop: watch::Receiver<bool>,
    /// Woken after every vendor request is answered: a live log tail reads what it logged.
    pub(crate) activity: tokio::sync::Notify,
    /// Set once every simulator listens.
    pub(crate) urls: OnceLock<Urls>,
}

impl Shared {
    pub(crate) fn new(world: World, faults: FaultSet, stop: watch::Receiver<bool>) -> Self {
        Shared {
            world: Mutex::new(world),
            faults,
            stop,
            activity: tokio::sync::Notify::new(),
            urls: OnceLock::new(),
        }
    }

    /// Runs `f` on the world under the lock (never across an await).
    pub(crate) fn with_world<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        let mut w = self.world.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut w)
    }

    /// Runs `f` on simulator state `T` under the lock; `None` if no simulator installed one.
    pub(crate) fn with_state<T: Any, R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        self.with_world(|w| w.get_mut::<T>().map(f))
    }

    /// A handler's answer computed from simulator state `T`. Every simulator installs its
    /// state before it serves, so a missing one is a bug: 500.
    pub(crate) fn respond<T: Any>(&self, f: impl FnOnce(&mut T) -> Response) -> Response {
        self.with_state(f)
            .unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response())
    }

    pub(crate) fn urls(&self) -> Urls {
        self.urls.get().cloned().unwrap_or_default()
    }

    /// The base URL of `vendor`, empty before the sandbox listens.
    pub(crate) fn url_of(&self, vendor: &str) -> String {
        self.urls
            .get()
            .and_then(|u| u.get(vendor))
            .unwrap_or_default()
            .to_string()
    }

    /// Every simulator's state as JSON (what `--sandbox-state` writes): the built-in
    /// simulators in order, then the scripted vendors, the request log and the faults.
    pub(crate) fn state(&self) -> Value {
        let faults: Vec<Value> = self
            .faults
            .fired()
            .into_iter()
            .map(|(rule, fired)| json!({"rule": rule, "fired": fired}))
            .collect();
        let urls = self.urls();
        self.with_world(|w| {
            let mut state = Map::new();
            for sim in BUILT_IN {
                for (key, value) in sim.state(w) {
                    state.insert(key.into(), value);
                }
            }
            let scripted = w
                .get::<ScriptedState>()
                .map_or_else(|| json!({}), |s| s.to_json(&urls.scripted));
            state.insert("scripted".into(), scripted);
            state.insert("requests".into(), json!(w.requests));
            state.insert("faults".into(), Value::Array(faults));
            Value::Object(state)
        })
    }
}
