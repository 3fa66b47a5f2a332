//! `/proc/loadavg`: the 1, 5 and 15 minute load averages.

use super::problem::{quote, Problems};

/// Load averages over 1, 5 and 15 minutes; a field that does not read as one is `None` (and a
/// problem).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LoadAvg {
    pub one: Option<f64>,
    pub five: Option<f64>,
    pub fifteen: Option<f64>,
}

/// Parses `0.21 0.37 0.39 1/719 19737` (kernel `fs/proc/loadavg.c`). Fails only when none of the
/// three averages reads.
pub fn parse(text: &str, problems: &mut Problems) -> Result<LoadAvg, String> {
    let mut found = Problems::new();
    let mut fields = text.split_ascii_whitespace();
    let mut next = |what: &str| -> Option<f64> {
        let problems = &mut found;
        let Some(field) = fields.next() else {
            problems.line(1, format!("no {what} load average"));
            return None;
        };
        let value = field
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0);
        if value.is_none() {
            problems.line(
                1,
                format!("{what} load average {} is not a number", quote(field)),
            );
        }
        value
    };
    let load = LoadAvg {
        one: next("1-minute"),
        five: next("5-minute"),
        fifteen: next("15-minute"),
    };
    if load == LoadAvg::default() {
        return Err(format!("{} is not a load average line", quote(text.trim())));
    }
    problems.extend(found);
    Ok(load)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fixture() {
        let mut problems = Problems::new();
        let load = parse(
            include_str!("../../../fixtures/pve-node/proc/loadavg"),
            &mut problems,
        )
        .unwrap();
        assert_eq!(
            load,
            LoadAvg {
                one: Some(0.21),
                five: Some(0.37),
                fifteen: Some(0.39)
            }
        );
        assert!(problems.is_empty());
    }

    #[test]
    fn a_bad_field_leaves_the_others() {
        let mut problems = Problems::new();
        let load = parse("0.1 -0.2 0.3 1/2 3\n", &mut problems).unwrap();
        assert_eq!(
            (load.one, load.five, load.fifteen),
            (Some(0.1), None, Some(0.3))
        );
        assert_eq!(
            problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["line 1: 5-minute load average \"-0.2\" is not a number"]
        );
        let mut problems = Problems::new();
        let load = parse("0.1 0.2", &mut problems).unwrap();
        assert_eq!(load.fifteen, None);
        assert_eq!(problems.len(), 1);
    }

    #[test]
    fn broken() {
        for bad in ["", "a b c 1/2 3", "NaN inf -1"] {
            assert!(parse(bad, &mut Problems::new()).is_err(), "{bad:?}");
        }
    }
}
