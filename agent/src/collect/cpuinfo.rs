//! `/proc/cpuinfo`: CPU model, logical CPU count and sockets.

/// What the slow sample says about the CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuInfo {
    /// `model name` (x86) or `Model` (ARM boards); absent where neither is given.
    pub model: Option<String>,
    /// `processor` entries.
    pub count: u32,
    /// Distinct `physical id`s; absent where the kernel does not say.
    pub sockets: Option<u32>,
}

/// Parses the `key : value` blocks, one per logical CPU.
pub fn parse(text: &str) -> Result<CpuInfo, String> {
    let mut model = None;
    let mut count = 0u32;
    let mut sockets: Vec<&str> = Vec::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "processor" => count += 1,
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
        assert_eq!(
            parse(include_str!("../../../fixtures/pve-node/proc/cpuinfo")).unwrap(),
            CpuInfo {
                model: Some("Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz".into()),
                count: 8,
                sockets: Some(1),
            }
        );
    }

    #[test]
    fn broken() {
        assert!(parse("").is_err());
        assert!(parse("garbage\nmodel name : x\n").is_err());
    }
}
