//! Counters the admin API's `/metrics` reports in Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A counter per label value (per function, say; or per store, operation and
/// result). Behind a lock: for events counted in the thousands per second at most.
#[derive(Debug)]
pub struct CounterVec<K = String> {
    values: Mutex<BTreeMap<K, u64>>,
}

impl<K> Default for CounterVec<K> {
    fn default() -> Self {
        Self {
            values: Mutex::new(BTreeMap::new()),
        }
    }
}

impl<K: Ord + Clone> CounterVec<K> {
    /// Adds one for `label`.
    pub fn add(&self, label: K) {
        *self
            .values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(label)
            .or_default() += 1;
    }

    /// Every label's count.
    pub fn values(&self) -> BTreeMap<K, u64> {
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The total over all labels.
    pub fn total(&self) -> u64 {
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .sum()
    }
}

impl CounterVec<String> {
    /// Adds one for `label`.
    pub fn inc(&self, label: &str) {
        self.add(label.to_string());
    }
}

/// Upper bounds of the latency buckets, in microseconds: fine enough to tell
/// 10 µs from 25 µs, wide enough for a 10 s timeout.
pub const LATENCY_BUCKETS_US: [u64; 19] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000,
    500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// A latency histogram: lock-free, one atomic add per observation and bucket.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        if let Some(i) = LATENCY_BUCKETS_US.iter().position(|&b| us <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// The `q` quantile (0 to 1) as the upper bound of the bucket it falls
    /// in, as Prometheus's `histogram_quantile` would bound it; `None`
    /// before the first sample. Samples over the last bucket count as
    /// `None` too when the quantile falls among them.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 {
            return None;
        }
        let rank = ((count as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS_US.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            if cumulative >= rank {
                return Some(Duration::from_micros(*bound));
            }
        }
        None
    }

    /// Adds this histogram's samples to `e` as `name` with `labels`, in seconds.
    pub fn render(&self, e: &mut Exposition, name: &str, labels: &[(&str, &str)]) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BUCKETS_US.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let le = format!("{}", *bound as f64 / 1e6);
            let mut l = labels.to_vec();
            l.push(("le", &le));
            e.sample(&bucket, &l, cumulative);
        }
        let count = self.count.load(Ordering::Relaxed);
        let mut l = labels.to_vec();
        l.push(("le", "+Inf"));
        e.sample(&bucket, &l, count);
        e.sample(
            &format!("{name}_sum"),
            labels,
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
        );
        e.sample(&format!("{name}_count"), labels, count);
    }
}

/// Builds a Prometheus text exposition.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    /// Starts a metric family.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        self
    }

    /// One sample with its labels.
    pub fn sample(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: impl std::fmt::Display,
    ) -> &mut Self {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let escaped = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.text, "{k}=\"{escaped}\"");
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
        self
    }

    /// The finished text.
    pub fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        let mut e = Exposition::default();
        e.family("wedge_x_total", "counter", "Things.").sample(
            "wedge_x_total",
            &[("function", "a\"b")],
            3,
        );
        assert_eq!(
            e.finish(),
            "# HELP wedge_x_total Things.\n# TYPE wedge_x_total counter\nwedge_x_total{function=\"a\\\"b\"} 3\n"
        );
    }

    #[test]
    fn histograms_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(7));
        h.observe(Duration::from_micros(40));
        h.observe(Duration::from_secs(60));
        let mut e = Exposition::default();
        h.render(&mut e, "d", &[]);
        let text = e.finish();
        assert!(text.contains("d_bucket{le=\"0.00001\"} 1\n"), "{text}");
        assert!(text.contains("d_bucket{le=\"0.00005\"} 2\n"), "{text}");
        assert!(text.contains("d_bucket{le=\"10\"} 2\n"), "{text}");
        assert!(text.contains("d_bucket{le=\"+Inf\"} 3\n"), "{text}");
        assert!(text.contains("d_count 3\n"), "{text}");
        assert_eq!(h.quantile(0.3), Some(Duration::from_micros(10)));
        assert_eq!(h.quantile(0.5), Some(Duration::from_micros(50)));
        assert_eq!(h.quantile(0.99), None, "beyond the last bucket");
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn counters_count_per_label() {
        let c = CounterVec::default();
        c.inc("a");
        c.inc("a");
        c.inc("b");
        assert_eq!(c.values()["a"], 2);
        assert_eq!(c.total(), 3);
    }
}
