//! Timing: medians over an adaptive number of repetitions.
//!
//! A first timed call estimates the cost of one call. Calls are grouped into
//! batches of at least ~20 µs (so clock overhead stays small), and the number
//! of batches N is chosen so one measurement takes about `TARGET` (at least
//! `MIN_REPS` batches). The result is the median per-call time of the batches.

use std::hint::black_box;
use std::time::{Duration, Instant};

const TARGET: Duration = Duration::from_millis(300);
const MIN_BATCH: Duration = Duration::from_micros(20);
const MIN_REPS: usize = 5;
const MAX_REPS: usize = 100_000;

/// One measurement: median nanoseconds per call over `reps` batches of `batch` calls.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub median_ns: f64,
    pub reps: usize,
    pub batch: usize,
}

/// Times `f`, which returns a value that is kept alive with `black_box`.
pub fn measure<T, E>(mut f: impl FnMut() -> Result<T, E>) -> Result<Sample, E> {
    black_box(f()?); // warm-up
    let start = Instant::now();
    black_box(f()?);
    let one = start.elapsed().max(Duration::from_nanos(1));
    let batch = (MIN_BATCH.as_nanos() / one.as_nanos()).clamp(1, 1_000_000) as usize;
    let per_batch = one.as_nanos() * batch as u128;
    let reps = (TARGET.as_nanos() / per_batch).clamp(MIN_REPS as u128, MAX_REPS as u128) as usize;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let start = Instant::now();
        for _ in 0..batch {
            black_box(f()?);
        }
        times.push(start.elapsed().as_nanos() as f64 / batch as f64);
    }
    Ok(Sample {
        median_ns: median(&mut times),
        reps,
        batch,
    })
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
}
