//! Timing: medians over an adaptive number of repetitions.
//!
//! A first timed call estimates the cost of one call. Calls are grouped into
//! batches of at least ~20 µs (so clock overhead stays small), and the number
//! of batches is chosen so one round takes about `ROUND` (at least
//! `MIN_REPS` batches). The caller runs several rounds, interleaving the
//! engines so that a burst of load on the machine hits all of them; the
//! result is the median per-call time over all batches of all rounds.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Rounds per measurement (engines are interleaved between rounds).
pub const ROUNDS: usize = 3;
const ROUND: Duration = Duration::from_millis(100);
const MIN_BATCH: Duration = Duration::from_micros(20);
const MIN_REPS: usize = 3;
const MAX_REPS: usize = 100_000;

/// One measurement: median nanoseconds per call over `reps` batches of `batch` calls.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub median_ns: f64,
    pub reps: usize,
    pub batch: usize,
}

/// Per-call times of the batches measured so far for one engine.
#[derive(Default)]
pub struct Timings {
    times: Vec<f64>,
    batch: usize,
}

impl Timings {
    /// Runs one round of `f` (which returns a value kept alive with `black_box`).
    pub fn round<T, E>(&mut self, mut f: impl FnMut() -> Result<T, E>) -> Result<(), E> {
        black_box(f()?); // warm-up
        if self.batch == 0 {
            let start = Instant::now();
            black_box(f()?);
            let one = start.elapsed().max(Duration::from_nanos(1));
            self.batch = (MIN_BATCH.as_nanos() / one.as_nanos()).clamp(1, 1_000_000) as usize;
        }
        let first = Instant::now();
        let mut reps = 0;
        while reps < MIN_REPS || (first.elapsed() < ROUND && reps < MAX_REPS) {
            let start = Instant::now();
            for _ in 0..self.batch {
                black_box(f()?);
            }
            self.times
                .push(start.elapsed().as_nanos() as f64 / self.batch as f64);
            reps += 1;
        }
        Ok(())
    }

    pub fn sample(&self) -> Sample {
        let mut t = self.times.clone();
        Sample {
            median_ns: median(&mut t),
            reps: t.len(),
            batch: self.batch,
        }
    }
}

/// `ROUNDS` rounds of `f` in a row (for measurements with nothing to interleave).
pub fn measure<T, E>(mut f: impl FnMut() -> Result<T, E>) -> Result<Sample, E> {
    let mut t = Timings::default();
    for _ in 0..ROUNDS {
        t.round(&mut f)?;
    }
    Ok(t.sample())
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn rounds_collect_at_least_min_reps_each() {
        let mut n = 0u64;
        let s = measure(|| -> Result<u64, ()> {
            n += 1;
            Ok(n)
        })
        .unwrap();
        assert!(s.reps >= ROUNDS * MIN_REPS);
        assert!(s.batch >= 1 && s.median_ns > 0.0);
    }
}
