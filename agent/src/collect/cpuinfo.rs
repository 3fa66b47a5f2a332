//! `/proc/cpuinfo`: CPU model, logical CPU count and sockets.

use super::problem::{numbered_lines, quote, Problems};

/// What the slow sample says about the CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuInfo {
    /// `model name` (x86) or `Model` (ARM boards); absent where neither is given.
    pub model: Option<String>,
    /// `processor` entries (pve-common `ProcFSTools::read_cpuinfo` counts them the same way).
    pub count: u32,
    /// Distinct `physical id`s; absent where the kernel does not say.
    pub sockets: Option<u32>,
}

/// Parses the `key : value` blocks, one per logical CPU, separated by blank lines. A non-blank
/// line without a colon is skipped and reported. Fails without any `processor` line.
pub fn parse(text: &str, problems: &mut Problems) -> Result<CpuInfo, String> {
    let mut model = None;
    let mut count = 0u32;
    let mut sockets: Vec<&str> = Vec::new();
    for (number, line) in numbered_lines(text) {
        let Some((key, value)) = line.split_once(':') else {
            if !line.trim().is_empty() {
                problems.line(number, format!("{} is not \"key : value\"", quote(line)));
            }
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "processor" => count = count.saturating_add(1),
            "model name" | "Model" if model.is_none() && !value.is_empty() => {
                model = Some(value.to_owned());
            }
            "physical id" if !sockets.contains(&value) => sockets.push(value),
            _ => {}
        }
    }
    if count == 0 {
        return Err("no \"processor\" lines".into());
    }
    Ok(CpuInfo {
        model,
        count,
        sockets: u32::try_from(sockets.len()).ok().filter(|n| *n > 0),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fixture() {
        let mut problems = Problems::new();
        assert_eq!(
            parse(
                include_str!("../../../fixtures/pve-node/proc/cpuinfo"),
                &mut problems
            )
            .unwrap(),
            CpuInfo {
                model: Some("Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz".into()),
                count: 8,
                sockets: Some(1),
            }
        );
        assert!(problems.is_empty());
    }

    #[test]
    fn a_line_without_a_colon_is_reported() {
        let mut problems = Problems::new();
        let info = parse("processor : 0\ngarbage\n\nprocessor : 1\n", &mut problems).unwrap();
        assert_eq!(info.count, 2);
        assert_eq!(problems.iter().next().unwrap().line, Some(2));
    }

    #[test]
    fn broken() {
        assert!(parse("", &mut Problems::new()).is_err());
        assert!(parse("garbage\nmodel name : x\n", &mut Problems::new()).is_err());
    }
}
