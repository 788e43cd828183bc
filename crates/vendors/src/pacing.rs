//! Client-side pacing against a vendor's request pool, and the clock of time spent waiting
//! for rate limits.
//!
//! Heroku gives each account a pool of request tokens: every request takes one, the pool
//! refills at a steady rate (about 75 a minute), and every answer says how many remain
//! (`RateLimit-Remaining`). A fan-out that sends as fast as its concurrency allows spends
//! the pool and then collects 429s. Here each request first takes a token the pool is known
//! to have: the estimate is our own count (one token per request, plus the refill since,
//! capped at the largest pool seen), lowered by any answer that says fewer remain than that
//! (`RateLimit-Remaining` less the requests still in flight, which it may not count yet).
//! An answer never raises the estimate: the vendor may serve concurrent requests in
//! another order than they were sent, so a newer request's answer can predate an older
//! request's token. When none is left, the request waits for the refill instead of being
//! refused.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Tokens kept back for whatever else uses the same account meanwhile.
const RESERVE: f64 = 1.0;

/// One vendor's pool, as far as its answers tell.
#[derive(Debug)]
pub(crate) struct Pacer {
    refill_per_sec: f64,
    state: Mutex<PoolEstimate>,
}

#[derive(Debug)]
struct PoolEstimate {
    /// Tokens believed available at `at`; `None` until an answer said.
    tokens: Option<f64>,
    at: Instant,
    /// The largest pool an answer showed (the estimate never refills past it).
    capacity: f64,
    in_flight: u32,
}

/// A request holding one of the pool's tokens; dropping it (answered or abandoned) ends it.
pub(crate) struct Ticket<'a> {
    pacer: &'a Pacer,
    done: bool,
}

impl Ticket<'_> {
    /// The answer's `RateLimit-Remaining`, if it had one: the estimate starts again from it.
    pub(crate) fn answered(mut self, remaining: Option<f64>) {
        self.done = true;
        let mut s = self.pacer.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        if let Some(r) = remaining {
            s.capacity = s.capacity.max(r);
            // Not clamped at 0: requests in flight that the answer does not count yet are
            // a debt the refill must pay before the next request goes.
            let seen = r - f64::from(s.in_flight);
            let now = Instant::now();
            let t = match s.tokens {
                Some(t) => {
                    let refilled = t + self.pacer.refill_per_sec * (now - s.at).as_secs_f64();
                    refilled.min(s.capacity.max(t)).min(seen)
                }
                None => seen,
            };
            s.tokens = Some(t);
            s.at = now;
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut s = self.pacer.lock();
            s.in_flight = s.in_flight.saturating_sub(1);
        }
    }
}

impl Pacer {
    pub(crate) fn new(refill_per_minute: f64) -> Self {
        Pacer {
            refill_per_sec: (refill_per_minute / 60.0).max(1e-6),
            state: Mutex::new(PoolEstimate {
                tokens: None,
                at: Instant::now(),
                capacity: 0.0,
                in_flight: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolEstimate> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ticket<'a>(&'a self, s: &mut PoolEstimate) -> Ticket<'a> {
        s.in_flight += 1;
        Ticket {
            pacer: self,
            done: false,
        }
    }

    /// Takes a token, waiting for the refill when the pool is known to be spent.
    pub(crate) async fn acquire(&self, clock: &WaitClock) -> Ticket<'_> {
        loop {
            let wait = {
                let mut s = self.lock();
                let now = Instant::now();
                match s.tokens {
                    // Nothing known yet: the first answers tell.
                    None => return Self::ticket(self, &mut s),
                    Some(t) => {
                        let refilled = t + self.refill_per_sec * (now - s.at).as_secs_f64();
                        // Never past the largest pool seen (an idle spell refills no more),
                        // but always enough for one request beyond the reserve: a pool first
                        // seen nearly empty must not stall the run.
                        let cap = s.capacity.max(2.0 + RESERVE);
                        let t = refilled.min(cap.max(t));
                        s.tokens = Some(t);
                        s.at = now;
                        if t >= 1.0 + RESERVE {
                            s.tokens = Some(t - 1.0);
                            return Self::ticket(self, &mut s);
                        }
                        // Bounded whatever the estimate says: a wait is never more than an
                        // hour at a time.
                        Duration::try_from_secs_f64((1.0 + RESERVE - t) / self.refill_per_sec)
                            .unwrap_or(Duration::MAX)
                            .min(Duration::from_secs(3600))
                    }
                }
            };
            clock.wait(wait).await;
        }
    }
}

/// Wall-clock time during which at least one request waited for a rate limit (concurrent
/// waits count once), for the run report.
#[derive(Debug, Default)]
pub(crate) struct WaitClock {
    state: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    waiters: u32,
    since: Option<Instant>,
    total: Duration,
}

impl WaitClock {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps `d`, counted as waiting for a rate limit.
    pub(crate) async fn wait(&self, d: Duration) {
        {
            let mut s = self.lock();
            if s.waiters == 0 {
                s.since = Some(Instant::now());
            }
            s.waiters += 1;
        }
        // Counted off even if the sleep is abandoned (Ctrl-C drops the future).
        struct Done<'a>(&'a WaitClock);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                let mut s = self.0.lock();
                s.waiters = s.waiters.saturating_sub(1);
                if s.waiters == 0 {
                    if let Some(since) = s.since.take() {
                        s.total += since.elapsed();
                    }
                }
            }
        }
        let _done = Done(self);
        tokio::time::sleep(d).await;
    }

    /// The time waited so far (a wait in progress counts up to now).
    pub(crate) fn total(&self) -> Duration {
        let s = self.lock();
        s.total + s.since.map_or(Duration::ZERO, |t| t.elapsed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pacer of 60 requests a minute (one token a second), and the clock of its waits.
    fn one_a_second() -> (WaitClock, Pacer) {
        (WaitClock::default(), Pacer::new(60.0))
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_pool_waits_for_the_refill_and_the_wait_is_counted() {
        let (clock, p) = one_a_second();
        // Unknown at first: the request goes at once.
        p.acquire(&clock).await.answered(Some(3.0));
        // 3 left, one kept in reserve: two go at once, the third waits a second.
        let start = tokio::time::Instant::now();
        p.acquire(&clock).await.answered(None);
        p.acquire(&clock).await.answered(None);
        assert_eq!(start.elapsed(), Duration::ZERO);
        p.acquire(&clock).await.answered(None);
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(999) && waited <= Duration::from_millis(1001),
            "{waited:?}"
        );
        assert_eq!(clock.total().as_millis(), waited.as_millis());
    }

    #[tokio::test(start_paused = true)]
    async fn requests_in_flight_count_against_what_an_answer_says_remains() {
        let (clock, p) = one_a_second();
        p.acquire(&clock).await.answered(Some(10.0));
        let in_flight: Vec<Ticket<'_>> = {
            let mut v = Vec::new();
            for _ in 0..4 {
                v.push(p.acquire(&clock).await);
            }
            v
        };
        // An answer that still says 5: the four in flight may not be in it yet.
        let mut it = in_flight.into_iter();
        it.next().unwrap().answered(Some(5.0));
        let s = p.lock();
        assert_eq!((s.tokens, s.in_flight), (Some(2.0), 3));
    }

    #[tokio::test(start_paused = true)]
    async fn requests_in_flight_past_an_empty_pool_are_a_debt_the_refill_pays_first() {
        let (clock, p) = one_a_second();
        let first = p.acquire(&clock).await;
        let others: Vec<Ticket<'_>> = vec![p.acquire(&clock).await, p.acquire(&clock).await];
        // The pool is empty when the first is served; the two others are still on the way.
        first.answered(Some(0.0));
        assert_eq!(p.lock().tokens, Some(-2.0));
        drop(others);
        // They take the refill's first two tokens, the reserve the third: the next waits 4 s.
        let start = tokio::time::Instant::now();
        p.acquire(&clock).await.answered(None);
        assert_eq!(start.elapsed().as_secs(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_answer_to_an_older_request_cannot_raise_the_estimate() {
        let (clock, p) = one_a_second();
        let older = p.acquire(&clock).await;
        let newer = p.acquire(&clock).await;
        // The newer request was served last and says 5 remain; the older one's answer,
        // processed after it, says 9 (it was served before others arrived).
        newer.answered(Some(5.0));
        older.answered(Some(9.0));
        assert_eq!(p.lock().tokens, Some(4.0));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_served_out_of_order_cannot_raise_the_estimate() {
        let (clock, p) = one_a_second();
        p.acquire(&clock).await.answered(Some(7.0));
        let a = p.acquire(&clock).await;
        let b = p.acquire(&clock).await;
        // The vendor served b first (5 left after it), then a (4 left); a's answer is
        // processed first. b's "5" does not count a's token: the estimate stays at what a
        // said less b in flight, one under the truth rather than one over it.
        a.answered(Some(4.0));
        b.answered(Some(5.0));
        assert_eq!(p.lock().tokens, Some(3.0));
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_request_leaves_the_pool_and_the_clock_straight() {
        let (clock, p) = one_a_second();
        drop(p.acquire(&clock).await);
        assert_eq!(p.lock().in_flight, 0);
        let wait = clock.wait(Duration::from_secs(10));
        let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
        assert_eq!(clock.total().as_secs(), 2);
        assert_eq!(clock.lock().waiters, 0);
    }
}
