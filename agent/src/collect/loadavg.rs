//! `/proc/loadavg`: the 1, 5 and 15 minute load averages.

/// Load averages over 1, 5 and 15 minutes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LoadAvg {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

/// Parses `0.21 0.37 0.39 1/719 19737`.
pub fn parse(text: &str) -> Result<LoadAvg, String> {
    let mut fields = text.split_ascii_whitespace();
    let mut next = |what: &str| -> Result<f64, String> {
        let field = fields
            .next()
            .ok_or_else(|| format!("missing the {what} load average"))?;
        field
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("{what} load average {field:?} is not a number"))
    };
    Ok(LoadAvg {
        one: next("1-minute")?,
        five: next("5-minute")?,
        fifteen: next("15-minute")?,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fixture() {
        let load = parse(include_str!("../../../fixtures/pve-node/proc/loadavg")).unwrap();
        assert_eq!(
            load,
            LoadAvg {
                one: 0.21,
                five: 0.37,
                fifteen: 0.39
            }
        );
    }

    #[test]
    fn broken() {
        for bad in ["", "0.1 0.2", "a b c 1/2 3", "0.1 -0.2 0.3", "NaN 1 1"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
