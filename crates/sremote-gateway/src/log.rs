//! Log lines on stderr: one access line per request, and events. They never contain
//! passwords, session ids, tokens, query strings or request bodies.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2026-01-02T03:04:05.678Z`
pub fn timestamp() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
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
