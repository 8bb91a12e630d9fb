//! Counters the admin API's `/metrics` reports in Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// A counter per label value (per function, say). Incremented on events that
/// are rare next to requests: swaps, rollbacks, load failures.
#[derive(Debug, Default)]
pub struct CounterVec {
    values: Mutex<BTreeMap<String, u64>>,
}

impl CounterVec {
    /// Adds one for `label`.
    pub fn inc(&self, label: &str) {
        *self
            .values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(label.to_string())
            .or_default() += 1;
    }

    /// Every label's count.
    pub fn values(&self) -> BTreeMap<String, u64> {
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
    fn counters_count_per_label() {
        let c = CounterVec::default();
        c.inc("a");
        c.inc("a");
        c.inc("b");
        assert_eq!(c.values()["a"], 2);
        assert_eq!(c.total(), 3);
    }
}
