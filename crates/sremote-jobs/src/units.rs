//! Durations (`90s`, `30m`, `1h30m`, `2d`, `1:30:00`, `2-12:00:00`) and sizes (`512M`,
//! `4G`, `1.5T`) as users write them for batch systems.

use std::time::Duration;

/// Parse a duration: a number with a unit (`s`, `m`, `h`, `d`; several may follow each
/// other: `1h30m`), a plain number of seconds, `[[D-]HH:]MM:SS` or `D-HH[:MM[:SS]]`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || {
        format!("{text:?} is not a duration: write e.g. 90s, 30m, 1h30m, 2d, 1:30:00 or 2-12:00:00")
    };
    if t.is_empty() {
        return Err(bad());
    }
    if t.contains(':') || t.contains('-') {
        let (days, clock) = match t.split_once('-') {
            Some((d, rest)) => (d.parse::<u64>().map_err(|_| bad())?, rest),
            None => (0, t),
        };
        let parts: Vec<u64> = clock
            .split(':')
            .map(|p| p.parse::<u64>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        let secs = match (t.contains('-'), parts.as_slice()) {
            (true, [h]) => h * 3600,
            (true, [h, m]) => h * 3600 + m * 60,
            (_, [h, m, s]) => h * 3600 + m * 60 + s,
            (false, [m, s]) => m * 60 + s,
            _ => return Err(bad()),
        };
        return Ok(Duration::from_secs(days * 86400 + secs));
    }
    if let Ok(secs) = t.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|_| bad());
    }
    let mut total = 0f64;
    let mut number = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let n: f64 = number.parse().map_err(|_| bad())?;
        number.clear();
        total += n * match c.to_ascii_lowercase() {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            'd' => 86400.0,
            'w' => 604800.0,
            _ => return Err(bad()),
        };
    }
    if !number.is_empty() {
        return Err(bad());
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

pub use sremote_core::units::parse_size;

/// `HH:MM:SS` with as many hours as needed (SGE, PBS).
pub(crate) fn hms(d: Duration) -> String {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Slurm's `D-HH:MM:SS`.
pub(crate) fn slurm_time(d: Duration) -> String {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    format!(
        "{}-{:02}:{:02}:{:02}",
        s / 86400,
        s / 3600 % 24,
        s / 60 % 60,
        s % 60
    )
}

/// Whole mebibytes, rounded up (at least 1).
pub(crate) fn mebibytes(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20).max(1)
}

/// A human-readable duration for messages (`1h 2m 3s`).
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, s / 60 % 60),
    }
}

/// Whether a resource value means "no limit": `unlimited`, `infinite` or `none` (any
/// case, surrounding blanks ignored).
pub fn is_unlimited(s: &str) -> bool {
    ["unlimited", "infinite", "none"]
        .iter()
        .any(|u| s.trim().eq_ignore_ascii_case(u))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let s = |n| Duration::from_secs(n);
        for (text, want) in [
            ("90", s(90)),
            ("90s", s(90)),
            ("30m", s(1800)),
            ("1h30m", s(5400)),
            ("2d", s(172800)),
            ("1:30:00", s(5400)),
            ("05:00", s(300)),
            ("2-12:00:00", s(216000)),
            ("1-2", s(93600)),
            ("0.5h", s(1800)),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in ["", "h", "1x", "1:2:3:4", "-1", "1h2", "a-b"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(hms(s(93784)), "26:03:04");
        assert_eq!(slurm_time(s(93784)), "1-02:03:04");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1.5t"), Ok(3 << 39));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("2 GB"), Ok(2 << 30));
        for bad in ["", "G", "4X", "-1G", "1e400"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(mebibytes(1), 1);
        assert_eq!(mebibytes((4 << 30) + 1), 4097);
    }
}
