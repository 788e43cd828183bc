//! The one in-memory world every simulator's state lives in, and the ways simulators reach
//! each other without knowing each other.
//!
//! A simulator finds only its own state here (by its type, which no other simulator imports).
//! Across simulators there are events (one announces that an app restarted; whoever runs on
//! that app subscribes) and two services a downstream app needs: mail to send through and a
//! platform to run on, each provided by whichever simulator plays that part.

use crate::faults::FaultSet;
use crate::http::RequestRecord;
use serde_json::Value;
use std::any::Any;

/// Something that happened, which other simulators may react to.
pub(crate) enum Event<'a> {
    /// An app on the platform restarted: its processes start again and re-read their config.
    Restarted { app: &'a str },
    /// A simulator served a request: time passes, so background traffic flows. `faults` may
    /// fail that traffic too.
    Tick { faults: &'a FaultSet },
}

/// Reacts to an event; it may change anything in the world.
pub(crate) type Listener = fn(&mut World, &Event<'_>);

/// Why a send failed: the HTTP status, the vendor's error code and its message.
#[derive(Debug, Clone)]
pub(crate) struct SendError {
    pub(crate) status: u16,
    pub(crate) code: i64,
    pub(crate) message: String,
}

/// The mail service apps send through.
pub(crate) trait Mail {
    /// The tokens of mail server `server`, oldest first (scenario placeholders name them).
    fn server_tokens(&self, server: &str) -> Option<Vec<String>>;

    /// Validates and records one email sent with `token`; `via` says who sent it.
    fn send(&mut self, token: Option<&str>, email: &Value, via: &str) -> Result<Value, SendError>;

    /// Whether a send with `token` would be accepted; nothing is recorded.
    fn check_token(&self, token: Option<&str>) -> Result<(), SendError>;
}

/// The platform apps run on.
pub(crate) trait Platform {
    /// The names of its apps, in order.
    fn apps(&self) -> Vec<String>;

    /// Config var `key` of `app`.
    fn config_var(&self, app: &str, key: &str) -> Option<String>;

    /// Appends a line to `app`'s log, from `source` (`app[web.1]`).
    fn log(&mut self, app: &str, source: &str, message: &str);

    /// Whether `app` serves requests: it is up, or its old processes serve while the new
    /// ones boot (preboot).
    fn serving(&mut self, app: &str) -> bool;

    /// Whether `app`'s traffic still goes to its old processes, on the config they started
    /// with (preboot: until the window after the change ends).
    fn old_dynos_serve(&mut self, app: &str) -> bool;

    /// Whether `app` runs any process at all (an app scaled to zero does not).
    fn runs(&self, app: &str) -> bool;
}

/// The mail service's tokens of a server, by its name: what a scenario's `@postmark:NAME`
/// placeholders resolve to while the simulators install.
pub(crate) type TokensOf<'a> = &'a dyn Fn(&str) -> Option<Vec<String>>;

/// How the world finds the state that provides service `S`.
struct Provider<S: ?Sized> {
    get: fn(&World) -> Option<&S>,
    get_mut: fn(&mut World) -> Option<&mut S>,
}

/// Every simulator's state, the listeners to events and the request log.
#[derive(Default)]
pub(crate) struct World {
    /// One state per simulator, told apart by type.
    states: Vec<Box<dyn Any + Send>>,
    listeners: Vec<Listener>,
    mail: Option<Provider<dyn Mail>>,
    platform: Option<Provider<dyn Platform>>,
    /// Every request served so far, in order.
    pub(crate) requests: Vec<RequestRecord>,
}

impl World {
    /// Adds a simulator's state (replacing one of the same type).
    pub(crate) fn insert<T: Any + Send>(&mut self, state: T) {
        match self.states.iter_mut().find(|s| s.is::<T>()) {
            Some(slot) => *slot = Box::new(state),
            None => self.states.push(Box::new(state)),
        }
    }

    pub(crate) fn get<T: Any>(&self) -> Option<&T> {
        self.states.iter().find_map(|s| s.downcast_ref::<T>())
    }

    pub(crate) fn get_mut<T: Any>(&mut self) -> Option<&mut T> {
        self.states.iter_mut().find_map(|s| s.downcast_mut::<T>())
    }

    /// Runs `f` on state `T` and the rest of the world: `T` is taken out while `f` runs, so
    /// `f` may change it and use a service at the same time.
    pub(crate) fn scope<T: Any + Send, R>(
        &mut self,
        f: impl FnOnce(&mut T, &mut World) -> R,
    ) -> Option<R> {
        let i = self.states.iter().position(|s| s.is::<T>())?;
        let taken = std::mem::replace(&mut self.states[i], Box::new(()));
        let mut state = match taken.downcast::<T>() {
            Ok(state) => state,
            Err(other) => {
                self.states[i] = other;
                return None;
            }
        };
        let result = f(&mut state, self);
        self.states[i] = state;
        Some(result)
    }

    /// Calls `listener` on every event from now on.
    pub(crate) fn subscribe(&mut self, listener: Listener) {
        self.listeners.push(listener);
    }

    /// Tells every listener, in the order they subscribed.
    pub(crate) fn emit(&mut self, event: &Event<'_>) {
        for listener in self.listeners.clone() {
            listener(self, event);
        }
    }

    /// Makes state `T` the world's mail service.
    pub(crate) fn provide_mail<T: Mail + Any>(&mut self) {
        self.mail = Some(Provider {
            get: |w| w.get::<T>().map(|s| s as &dyn Mail),
            get_mut: |w| w.get_mut::<T>().map(|s| s as &mut dyn Mail),
        });
    }

    pub(crate) fn mail(&self) -> Option<&dyn Mail> {
        (self.mail.as_ref()?.get)(self)
    }

    pub(crate) fn mail_mut(&mut self) -> Option<&mut dyn Mail> {
        let get = self.mail.as_ref()?.get_mut;
        get(self).map(|m| m as &mut dyn Mail)
    }

    /// Makes state `T` the platform apps run on.
    pub(crate) fn provide_platform<T: Platform + Any>(&mut self) {
        self.platform = Some(Provider {
            get: |w| w.get::<T>().map(|s| s as &dyn Platform),
            get_mut: |w| w.get_mut::<T>().map(|s| s as &mut dyn Platform),
        });
    }

    pub(crate) fn platform(&self) -> Option<&dyn Platform> {
        (self.platform.as_ref()?.get)(self)
    }

    pub(crate) fn platform_mut(&mut self) -> Option<&mut dyn Platform> {
        let get = self.platform.as_ref()?.get_mut;
        get(self).map(|p| p as &mut dyn Platform)
    }

    /// The tokens of mail server `server`, for scenario placeholders (`@postmark:NAME`).
    pub(crate) fn server_tokens(&self, server: &str) -> Option<Vec<String>> {
        self.mail()?.server_tokens(server)
    }

    /// Builds a simulator's state with the mail service's tokens at hand (its scenario's
    /// `@postmark:NAME` placeholders name them), then adds it.
    pub(crate) fn insert_built<T: Any + Send, E>(
        &mut self,
        build: impl FnOnce(TokensOf<'_>) -> Result<T, E>,
    ) -> Result<(), E> {
        let state = build(&|server| self.server_tokens(server))?;
        self.insert(state);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u32);

    fn count_restarts(w: &mut World, e: &Event<'_>) {
        if let Event::Restarted { .. } = e {
            w.scope(|c: &mut Counter, w| {
                c.0 += 1;
                // The rest of the world stays reachable while the counter is out.
                assert!(w.get::<String>().is_some());
                assert!(w.get::<Counter>().is_none());
            });
        }
    }

    #[test]
    fn states_are_found_by_type_and_listeners_hear_events() {
        let mut w = World::default();
        w.insert(Counter(0));
        w.insert(String::from("other"));
        w.subscribe(count_restarts);
        w.emit(&Event::Restarted { app: "a" });
        w.emit(&Event::Tick {
            faults: &FaultSet::default(),
        });
        assert_eq!(w.get::<Counter>().map(|c| c.0), Some(1));
        w.insert(Counter(7));
        assert_eq!(w.get::<Counter>().map(|c| c.0), Some(7));
        assert!(w.get::<u8>().is_none());
        assert!(w.mail().is_none() && w.platform().is_none());
    }
}
