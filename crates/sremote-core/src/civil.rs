//! UTC calendar fields from Unix time, without a date crate (for log stamps and
//! `touch -t` arguments).

/// `(year, month, day, hour, minute, second)` in UTC of `unix_secs` seconds since
/// 1970-01-01 (negative: before), by Howard Hinnant's `civil_from_days`.
pub fn utc(unix_secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = unix_secs.div_euclid(86_400);
    let rem = unix_secs.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_dates() {
        assert_eq!(super::utc(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(super::utc(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(super::utc(1_795_298_484), (2026, 11, 21, 22, 1, 24));
        assert_eq!(super::utc(-1), (1969, 12, 31, 23, 59, 59));
    }
}
