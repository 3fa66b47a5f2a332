//! `/proc/uptime`: seconds since boot.

/// Parses `350735.47 2771032.68` into whole seconds since boot.
pub fn parse(text: &str) -> Result<u64, String> {
    let seconds = parse_seconds(text)?;
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // checked finite and ≥ 0
    Ok(seconds.trunc() as u64)
}

/// Parses `350735.47 2771032.68` into seconds since boot, with the fraction (guest uptimes
/// are computed from it and a process start time in clock ticks).
pub fn parse_seconds(text: &str) -> Result<f64, String> {
    let field = text
        .split_ascii_whitespace()
        .next()
        .ok_or("file is empty")?;
    let seconds: f64 = field
        .parse()
        .map_err(|_| format!("uptime {field:?} is not a number"))?;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("uptime {field:?} is out of range"));
    }
    Ok(seconds)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fixture() {
        assert_eq!(
            parse(include_str!("../../../fixtures/pve-node/proc/uptime")),
            Ok(350_735)
        );
    }

    #[test]
    fn broken() {
        for bad in ["", "\n", "abc 1", "-5.0 1", "inf 1"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
