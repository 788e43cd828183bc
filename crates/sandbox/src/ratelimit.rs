//! Request pools: how many requests a vendor still takes, refilled at a steady rate.

/// A vendor's request pool (Heroku's per account). Heroku uses GCRA; a token bucket behaves
/// the same at the granularity a run sees. (GitHub's limit is a fixed hourly window instead.)
pub(crate) struct Pool {
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    at: std::time::Instant,
    /// Requests refused because the pool was empty.
    pub(crate) refused: u64,
}

impl Pool {
    /// The refill rate, in requests a minute.
    pub(crate) fn per_minute(&self) -> f64 {
        self.per_sec * 60.0
    }

    pub(crate) fn new(capacity: u32, per_sec: f64) -> Pool {
        Pool {
            capacity: f64::from(capacity),
            per_sec: per_sec.max(0.0),
            tokens: f64::from(capacity),
            at: std::time::Instant::now(),
            refused: 0,
        }
    }

    fn refill(&mut self) {
        let now = std::time::Instant::now();
        let gained = now.duration_since(self.at).as_secs_f64() * self.per_sec;
        self.tokens = (self.tokens + gained).min(self.capacity);
        self.at = now;
    }

    /// Takes a token for one request: what remains, or None when the pool is empty.
    pub(crate) fn take(&mut self) -> Option<u64> {
        self.refill();
        if self.tokens < 1.0 {
            self.refused += 1;
            return None;
        }
        self.tokens -= 1.0;
        Some(self.tokens as u64)
    }

    /// A pool from a scenario's figures.
    pub(crate) fn of(spec: &crate::scenario::RateLimitSpec) -> Pool {
        Pool::new(spec.capacity, spec.per_minute / 60.0)
    }

    /// Whole seconds until the next token (at least 1).
    pub(crate) fn wait_secs(&mut self) -> u64 {
        self.refill();
        if self.per_sec <= 0.0 {
            return 60;
        }
        (((1.0 - self.tokens).max(0.0) / self.per_sec).ceil() as u64).max(1)
    }

    /// The whole tokens left, after refilling.
    pub(crate) fn remaining(&mut self) -> u64 {
        self.refill();
        self.tokens as u64
    }

    /// Moves the pool's clock back by `secs`, as if that much time had passed.
    #[cfg(test)]
    fn rewind(&mut self, secs: u64) {
        let back = std::time::Duration::from_secs(secs);
        self.at = self.at.checked_sub(back).unwrap_or(self.at);
    }
}

#[cfg(test)]
mod tests {
    use super::Pool;

    #[test]
    fn the_pool_counts_down_refuses_when_empty_and_refills_with_time() {
        // Heroku's figures: 4,500 tokens, 75 a minute.
        let mut pool = Pool::new(3, 75.0 / 60.0);
        assert_eq!(pool.take(), Some(2));
        assert_eq!(pool.take(), Some(1));
        assert_eq!(pool.take(), Some(0));
        assert_eq!(pool.take(), None);
        assert_eq!(pool.refused, 1);
        // Two seconds at 1.25 a second: two whole tokens.
        pool.rewind(2);
        assert_eq!(pool.remaining(), 2);
        pool.rewind(3600);
        assert_eq!(pool.remaining(), 3, "never above capacity");
    }
}
