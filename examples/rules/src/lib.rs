//! The rule evaluator: JSON rules over request attributes, first match wins.
//!
//! ```json
//! {
//!   "default": "allow",
//!   "rules": [
//!     { "name": "block-bots", "decision": "deny",
//!       "when": [ { "attr": "header:user-agent", "op": "contains", "value": "bot" } ] },
//!     { "name": "big-orders-need-verification", "decision": "deny",
//!       "when": [ { "attr": "query:amount", "op": "gt", "value": 1000 },
//!                 { "attr": "session:verified", "op": "ne", "value": "yes" } ] }
//!   ]
//! }
//! ```
//!
//! Attributes: `method`, `path`, `client` (the client's IP address),
//! `header:<name>`, `query:<name>`, `session:<fact>`. Every condition of a rule
//! must hold for the rule to match. A missing attribute fails every test except
//! `missing` and the negative ones (`ne`, `not_in`, `not_cidr`), which it passes.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Let the request through.
    Allow,
    /// Refuse it.
    Deny,
}

/// A rule set, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// The decision when no rule matches.
    #[serde(default = "allow")]
    pub default: Decision,
    /// Checked in order; the first match decides.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

fn allow() -> Decision {
    Decision::Allow
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Named in every decision it makes.
    pub name: String,
    /// What a match decides.
    pub decision: Decision,
    /// All must hold.
    pub when: Vec<Condition>,
}

/// A test of one attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// `method`, `path`, `client`, `header:<name>`, `query:<name>` or `session:<fact>`.
    pub attr: String,
    /// The comparison.
    pub op: Op,
    /// A string, a number, or (for `in`/`not_in`) a list of them; absent for `exists`/`missing`.
    #[serde(default)]
    pub value: serde_json::Value,
}

/// Comparisons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Equal (as text, or as numbers when the value is a number).
    Eq,
    /// Not equal.
    Ne,
    /// Contains the text.
    Contains,
    /// Starts with the text.
    Prefix,
    /// Ends with the text.
    Suffix,
    /// Equal to one of a list.
    In,
    /// Equal to none of a list.
    NotIn,
    /// Numerically greater.
    Gt,
    /// Numerically greater or equal.
    Ge,
    /// Numerically less.
    Lt,
    /// Numerically less or equal.
    Le,
    /// The attribute is present.
    Exists,
    /// The attribute is absent.
    Missing,
    /// An IPv4 address inside the CIDR block (`10.0.0.0/8`).
    Cidr,
    /// An IPv4 address outside the CIDR block.
    NotCidr,
}

/// What the evaluator knows about a request.
#[derive(Debug, Default, Clone)]
pub struct Attributes {
    /// `GET`, `POST`...
    pub method: String,
    /// The path being checked.
    pub path: String,
    /// The client's IP address.
    pub client: String,
    /// Headers, names in lower case.
    pub headers: BTreeMap<String, String>,
    /// Query parameters, decoded; the first of a repeated name.
    pub query: BTreeMap<String, String>,
    /// Facts recorded about the session.
    pub session: BTreeMap<String, String>,
}

impl Attributes {
    /// The value of an attribute, if the request has it.
    pub fn get(&self, attr: &str) -> Option<&str> {
        let found = match attr.split_once(':') {
            Some(("header", name)) => self.headers.get(&name.to_ascii_lowercase()),
            Some(("query", name)) => self.query.get(name),
            Some(("session", fact)) => self.session.get(fact),
            _ => {
                return match attr {
                    "method" => Some(&self.method),
                    "path" => Some(&self.path),
                    "client" => Some(&self.client),
                    _ => None,
                };
            }
        };
        found.map(String::as_str)
    }
}

/// What the rules decided and which rule decided it (`None`: the default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Allow or deny.
    pub decision: Decision,
    /// The rule that matched.
    pub rule: Option<String>,
}

impl Rules {
    /// Parses and checks a rule set: attribute names, operators, values, CIDRs.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let rules: Rules = serde_json::from_str(text).map_err(|e| e.to_string())?;
        for rule in &rules.rules {
            if rule.when.is_empty() {
                return Err(format!("rule `{}` has no conditions", rule.name));
            }
            for c in &rule.when {
                c.check()
                    .map_err(|e| format!("rule `{}`: {e}", rule.name))?;
            }
        }
        Ok(rules)
    }

    /// The first matching rule's decision, or the default.
    pub fn evaluate(&self, attrs: &Attributes) -> Verdict {
        self.rules
            .iter()
            .find(|r| r.when.iter().all(|c| c.holds(attrs)))
            .map(|r| Verdict {
                decision: r.decision,
                rule: Some(r.name.clone()),
            })
            .unwrap_or(Verdict {
                decision: self.default,
                rule: None,
            })
    }
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            default: Decision::Allow,
            rules: Vec::new(),
        }
    }
}

impl Condition {
    fn check(&self) -> Result<(), String> {
        let known = matches!(self.attr.as_str(), "method" | "path" | "client")
            || ["header:", "query:", "session:"]
                .iter()
                .any(|p| self.attr.strip_prefix(p).is_some_and(|n| !n.is_empty()));
        if !known {
            return Err(format!("unknown attribute `{}`", self.attr));
        }
        match self.op {
            Op::Exists | Op::Missing => Ok(()),
            Op::In | Op::NotIn => match &self.value {
                serde_json::Value::Array(items) if items.iter().all(scalar) => Ok(()),
                _ => Err(format!(
                    "`{:?}` needs a list of strings or numbers",
                    self.op
                )),
            },
            Op::Gt | Op::Ge | Op::Lt | Op::Le => self
                .value
                .as_f64()
                .map(|_| ())
                .ok_or_else(|| format!("`{:?}` needs a number", self.op)),
            Op::Cidr | Op::NotCidr => self
                .value
                .as_str()
                .and_then(parse_cidr)
                .map(|_| ())
                .ok_or_else(|| format!("`{}` is not an IPv4 CIDR block", self.value)),
            _ if scalar(&self.value) => Ok(()),
            _ => Err(format!("`{:?}` needs a string or a number", self.op)),
        }
    }

    fn holds(&self, attrs: &Attributes) -> bool {
        let Some(actual) = attrs.get(&self.attr) else {
            return matches!(self.op, Op::Missing | Op::Ne | Op::NotIn | Op::NotCidr);
        };
        match self.op {
            Op::Exists => true,
            Op::Missing => false,
            Op::Eq => equals(actual, &self.value),
            Op::Ne => !equals(actual, &self.value),
            Op::Contains => actual.contains(text(&self.value).as_str()),
            Op::Prefix => actual.starts_with(text(&self.value).as_str()),
            Op::Suffix => actual.ends_with(text(&self.value).as_str()),
            Op::In => list(&self.value).iter().any(|v| equals(actual, v)),
            Op::NotIn => !list(&self.value).iter().any(|v| equals(actual, v)),
            Op::Gt | Op::Ge | Op::Lt | Op::Le => {
                let (Ok(a), Some(b)) = (actual.trim().parse::<f64>(), self.value.as_f64()) else {
                    return false;
                };
                match self.op {
                    Op::Gt => a > b,
                    Op::Ge => a >= b,
                    Op::Lt => a < b,
                    _ => a <= b,
                }
            }
            Op::Cidr | Op::NotCidr => {
                let inside = match (
                    actual.parse::<Ipv4Addr>(),
                    self.value.as_str().and_then(parse_cidr),
                ) {
                    (Ok(ip), Some((net, mask))) => u32::from(ip) & mask == net,
                    _ => false,
                };
                inside == (self.op == Op::Cidr)
            }
        }
    }
}

fn scalar(v: &serde_json::Value) -> bool {
    v.is_string() || v.is_number()
}

fn list(v: &serde_json::Value) -> &[serde_json::Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn equals(actual: &str, expected: &serde_json::Value) -> bool {
    match expected {
        serde_json::Value::Number(n) => actual.trim().parse::<f64>().ok() == n.as_f64(),
        other => actual == text(other),
    }
}

/// `10.0.0.0/8` as (network, mask).
fn parse_cidr(s: &str) -> Option<(u32, u32)> {
    let (ip, bits) = s.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let bits: u32 = bits.parse().ok().filter(|b| *b <= 32)?;
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    Some((u32::from(ip) & mask, mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> Attributes {
        let mut a = Attributes {
            method: "POST".into(),
            path: "/orders".into(),
            client: "10.1.2.3".into(),
            ..Attributes::default()
        };
        a.headers.insert("user-agent".into(), "curl/8".into());
        a.query.insert("amount".into(), "5000".into());
        a
    }

    fn rules(json: &str) -> Rules {
        Rules::from_json(json).unwrap()
    }

    #[test]
    fn first_matching_rule_decides_and_is_named() {
        let r = rules(
            r#"{"rules":[
                {"name":"bots","decision":"deny","when":[{"attr":"header:user-agent","op":"contains","value":"bot"}]},
                {"name":"big","decision":"deny","when":[{"attr":"query:amount","op":"gt","value":1000}]},
                {"name":"also-big","decision":"allow","when":[{"attr":"query:amount","op":"gt","value":10}]}
            ]}"#,
        );
        assert_eq!(
            r.evaluate(&attrs()),
            Verdict {
                decision: Decision::Deny,
                rule: Some("big".into())
            }
        );
    }

    #[test]
    fn no_match_falls_back_to_the_default() {
        let r = rules(
            r#"{"default":"deny","rules":[{"name":"get","decision":"allow","when":[{"attr":"method","op":"eq","value":"GET"}]}]}"#,
        );
        assert_eq!(
            r.evaluate(&attrs()),
            Verdict {
                decision: Decision::Deny,
                rule: None
            }
        );
    }

    #[test]
    fn every_condition_must_hold() {
        let r = rules(
            r#"{"rules":[{"name":"both","decision":"deny","when":[
                {"attr":"method","op":"eq","value":"POST"},
                {"attr":"path","op":"prefix","value":"/admin"}]}]}"#,
        );
        assert_eq!(r.evaluate(&attrs()).rule, None);
    }

    #[test]
    fn operators() {
        let a = attrs();
        let holds = |attr: &str, op: &str, value: &str| {
            let json = format!(r#"{{"attr":"{attr}","op":"{op}","value":{value}}}"#);
            let c: Condition = serde_json::from_str(&json).unwrap();
            c.check().unwrap();
            c.holds(&a)
        };
        assert!(holds("method", "eq", r#""POST""#));
        assert!(holds("method", "ne", r#""GET""#));
        assert!(holds("path", "suffix", r#""ders""#));
        assert!(holds("method", "in", r#"["PUT","POST"]"#));
        assert!(holds("method", "not_in", r#"["GET"]"#));
        assert!(holds("query:amount", "eq", "5000"));
        assert!(holds("query:amount", "ge", "5000"));
        assert!(!holds("query:amount", "lt", "5000"));
        assert!(holds("query:amount", "le", "5000.5"));
        assert!(holds("client", "cidr", r#""10.0.0.0/8""#));
        assert!(holds("client", "not_cidr", r#""192.168.0.0/16""#));
        assert!(holds("header:User-Agent", "exists", "null"));
        assert!(holds("session:verified", "missing", "null"));
        assert!(
            holds("session:verified", "ne", r#""yes""#),
            "a missing fact is not yes"
        );
        assert!(!holds("session:verified", "eq", r#""yes""#));
        assert!(!holds("query:missing", "gt", "1"));
    }

    #[test]
    fn bad_rules_are_refused_with_a_reason() {
        for (json, reason) in [
            (
                r#"{"rules":[{"name":"x","decision":"deny","when":[]}]}"#,
                "no conditions",
            ),
            (
                r#"{"rules":[{"name":"x","decision":"deny","when":[{"attr":"color","op":"eq","value":"red"}]}]}"#,
                "unknown attribute",
            ),
            (
                r#"{"rules":[{"name":"x","decision":"deny","when":[{"attr":"path","op":"gt","value":"a"}]}]}"#,
                "needs a number",
            ),
            (
                r#"{"rules":[{"name":"x","decision":"deny","when":[{"attr":"client","op":"cidr","value":"10.0.0.0/40"}]}]}"#,
                "CIDR",
            ),
            (
                r#"{"rules":[{"name":"x","decision":"maybe","when":[]}]}"#,
                "unknown variant",
            ),
            (r#"{"rulez":[]}"#, "unknown field"),
        ] {
            let err = Rules::from_json(json).unwrap_err();
            assert!(err.contains(reason), "{json}: {err}");
        }
    }
}
