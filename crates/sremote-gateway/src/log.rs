//! Log lines on stderr: one access line per request, and events. They never contain
//! passwords, session ids, tokens, query strings or request bodies.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2026-01-02T03:04:05.678Z`
pub fn timestamp() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let (year, month, day, hh, mm, ss) = sremote_core::civil::utc(secs);
    format!(
        "{year:04}-{month:02}-{day:02}T{hh:02}:{mm:02}:{ss:02}.{:03}Z",
        d.subsec_millis()
    )
}

/// Keep a logged value on one line and short.
fn clean(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(300)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// An event line.
pub fn event(msg: &str) {
    eprintln!("{} sremote-gateway: {}", timestamp(), clean(msg));
}

/// An access line: method, path (no query), status, response size, time, user.
pub fn access(
    method: &str,
    path: &str,
    status: u16,
    bytes: Option<u64>,
    took: Duration,
    user: Option<&str>,
) {
    let bytes = bytes.map(|b| b.to_string()).unwrap_or_else(|| "-".into());
    eprintln!(
        "{} access {} {} {} {} {:.1}ms user={}",
        timestamp(),
        method,
        clean(path),
        status,
        bytes,
        took.as_secs_f64() * 1000.0,
        user.map(clean).unwrap_or_else(|| "-".into())
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamp_shape() {
        let t = super::timestamp();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
        assert_eq!(super::clean("a\nb"), "a?b");
    }
}
