//! One command's counts and latencies over one bucket of time: what the console's charts draw.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{BUCKET_SECONDS, Class};
use crate::outcomes::RequestOutcome;

/// Counts and latencies of one command over one bucket.
#[derive(Debug, Clone)]
pub(super) struct Bucket {
    /// Which bucket of time: seconds since the epoch / [`BUCKET_SECONDS`].
    pub(super) slot: u64,
    /// Callbacks answered.
    count: u32,
    /// Refused by a plugin.
    refused: u32,
    /// Not answered by the plugins (failure policy answers, bad requests, clients gone), by cause.
    failed: BTreeMap<&'static str, u32>,
    /// Latency histogram, [`BINS_PER_OCTAVE`] bins per doubling from [`FIRST_BIN_MICROS`].
    latency: [u32; LATENCY_BINS],
}

const LATENCY_BINS: usize = 80;
const BINS_PER_OCTAVE: f64 = 4.0;
const FIRST_BIN_MICROS: f64 = 8.0;

fn latency_bin(micros: u64) -> usize {
    let octaves = ((micros.max(1) as f64) / FIRST_BIN_MICROS).log2();
    ((octaves * BINS_PER_OCTAVE).ceil().max(0.0) as usize).min(LATENCY_BINS - 1)
}

/// The upper bound of a latency bin, in microseconds.
fn bin_micros(bin: usize) -> u64 {
    (FIRST_BIN_MICROS * 2f64.powf(bin as f64 / BINS_PER_OCTAVE)).round() as u64
}

impl Bucket {
    /// Counts one callback that came to `outcome` after `micros`.
    pub(super) fn add(&mut self, outcome: RequestOutcome, micros: u64) {
        self.count += 1;
        match Class::of(outcome) {
            Class::GoesOn => {}
            Class::Refused => self.refused += 1,
            Class::Failed => *self.failed.entry(outcome.as_str()).or_default() += 1,
        }
        self.latency[latency_bin(micros)] += 1;
    }

    pub(super) fn new(slot: u64) -> Self {
        Self {
            slot,
            count: 0,
            refused: 0,
            failed: BTreeMap::new(),
            latency: [0; LATENCY_BINS],
        }
    }

    /// The latency under which `share` of the callbacks were answered (a bin's upper bound).
    fn percentile(&self, share: f64) -> u64 {
        let total: u64 = self.latency.iter().map(|&n| u64::from(n)).sum();
        let wanted = (total as f64 * share).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bin, &n) in self.latency.iter().enumerate() {
            seen += u64::from(n);
            if seen >= wanted {
                return bin_micros(bin);
            }
        }
        0
    }

    pub(super) fn to_json(&self) -> Value {
        json!({
            "t_ms": self.slot * BUCKET_SECONDS * 1000,
            "count": self.count,
            "refused": self.refused,
            "failed": self.failed,
            "p50_us": self.percentile(0.5),
            "p99_us": self.percentile(0.99),
        })
    }
}
