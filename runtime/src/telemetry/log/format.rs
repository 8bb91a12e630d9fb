//! The log line formats, text and JSON, written straight into the line buffer:
//! one access event per request goes through here, so the timestamp's date is
//! formatted once a second and fields are written without intermediate strings.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats every event as one line, text or JSON, ending in the node's region.
pub struct LineFormat {
    /// One JSON object per line instead of text.
    pub json: bool,
    /// The node's `region`, on every line.
    pub region: String,
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if self.json {
            w.write_str("{\"region\":")?;
            json_str(&mut w, &self.region)?;
            w.write_str(",\"timestamp\":\"")?;
            timestamp(&mut w)?;
            write!(w, "\",\"level\":\"{}\"", meta.level())?;
            if let Some(span) = ctx.lookup_current() {
                w.write_str(",\"span\":")?;
                json_str(&mut w, span.name())?;
            }
            Fields::write(&mut w, event, true)?;
            w.write_str(",\"target\":")?;
            json_str(&mut w, meta.target())?;
            w.write_str("}\n")
        } else {
            timestamp(&mut w)?;
            write!(w, " {} {}: ", level(meta.level()), meta.target())?;
            if let Some(scope) = ctx.event_scope() {
                for span in scope.from_root() {
                    w.write_str(span.name())?;
                    let ext = span.extensions();
                    if let Some(fields) = ext.get::<FormattedFields<N>>()
                        && !fields.is_empty()
                    {
                        write!(w, "{{{fields}}}")?;
                    }
                    w.write_str(": ")?;
                }
            }
            Fields::write(&mut w, event, false)?;
            writeln!(w, " region={}", self.region)
        }
    }
}

/// `INFO` and `WARN` padded to the width of `DEBUG`, as tracing writes them.
fn level(level: &Level) -> &'static str {
    match *level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

/// Writes an event's fields: `name=value` separated by spaces (the message
/// first and bare), or `,"name":value` for JSON.
struct Fields<'a, 'w> {
    w: &'a mut Writer<'w>,
    json: bool,
    /// Nothing written yet: no separator before the next field.
    first: bool,
    result: fmt::Result,
}

impl<'a, 'w> Fields<'a, 'w> {
    /// Writes every field of `event` to `w`.
    fn write(w: &'a mut Writer<'w>, event: &Event<'_>, json: bool) -> fmt::Result {
        let mut fields = Fields {
            w,
            json,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result
    }

    fn field(&mut self, field: &Field, value: &dyn fmt::Display, quote: bool) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        self.result = if self.json {
            (|| {
                self.w.write_str(",\"")?;
                self.w.write_str(name)?;
                self.w.write_str("\":")?;
                if quote {
                    self.w.write_char('"')?;
                    write!(JsonEscaped(&mut *self.w), "{value}")?;
                    self.w.write_char('"')
                } else {
                    write!(self.w, "{value}")
                }
            })()
        } else {
            let sep = if self.first { "" } else { " " };
            if name == "message" {
                write!(self.w, "{sep}{value}")
            } else {
                write!(self.w, "{sep}{name}={value}")
            }
        };
        self.first = false;
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, &value, true);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, &value, false);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, &value, false);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, &value, false);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.field(field, &value, false);
        } else {
            self.field(field, &value, true);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.field(field, &value, true);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, &DebugAsDisplay(value), true);
    }
}

/// `%value` fields reach a visitor as `Debug` wrappers around their `Display`.
struct DebugAsDisplay<'a>(&'a dyn fmt::Debug);

impl fmt::Display for DebugAsDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Escapes what passes through it for use inside a JSON string.
struct JsonEscaped<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for JsonEscaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, b) in s.bytes().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&s[plain..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = i + 1;
        }
        self.0.write_str(&s[plain..])
    }
}

fn json_str(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    JsonEscaped(w).write_str(s)?;
    w.write_char('"')
}

thread_local! {
    /// The current second, and `YYYY-MM-DDTHH:MM:SS` for it.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// The current UTC time as RFC 3339 with microseconds: `2026-11-21T09:30:00.123456Z`.
fn timestamp(w: &mut impl fmt::Write) -> fmt::Result {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != secs {
            *second = secs;
            text.clear();
            let _ = write_date_time(text, secs);
        }
        write!(w, "{text}.{:06}Z", now.subsec_micros())
    })
}

/// `YYYY-MM-DDTHH:MM:SS` for `secs` since the Unix epoch (proleptic Gregorian).
fn write_date_time(w: &mut impl fmt::Write, secs: u64) -> fmt::Result {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days to civil date, after Howard Hinnant's `civil_from_days`.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    write!(
        w,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date_time(secs: u64) -> String {
        let mut s = String::new();
        write_date_time(&mut s, secs).unwrap();
        s
    }

    #[test]
    fn dates_match_the_calendar() {
        assert_eq!(date_time(0), "1970-01-01T00:00:00");
        assert_eq!(date_time(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(date_time(1_795_000_000), "2026-11-18T11:06:40");
        assert_eq!(date_time(4_107_542_399), "2100-02-28T23:59:59");
        assert_eq!(date_time(4_107_542_400), "2100-03-01T00:00:00");
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut s = String::new();
        json_str(&mut s, "a\"b\\c\nd\u{1}é").unwrap();
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
        let parsed: String = serde_json::from_str(&s).unwrap();
        assert_eq!(parsed, "a\"b\\c\nd\u{1}é");
    }
}
