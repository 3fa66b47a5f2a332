//! Versions: Proxmox VE (`/usr/share/perl5/PVE/pvecfg.pm`, else `pveversion`), the ZFS module
//! (`/sys/module/zfs/version`) and the kernel (`/proc/sys/kernel/osrelease`).

/// A Proxmox VE version and the commit it was built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PveVersion {
    pub version: String,
    pub repoid: Option<String>,
}

/// Reads `sub version_text { return '8.2.4/faa83925c9641325'; }` out of `pvecfg.pm`.
pub fn parse_pvecfg(text: &str) -> Result<PveVersion, String> {
    let after = text
        .split_once("sub version_text")
        .map(|(_, rest)| rest)
        .ok_or("no version_text sub")?;
    // The quoted string must be closed: a file cut inside it would otherwise give a wrong
    // (shortened) commit id.
    let mut parts = after.split('\'');
    let quoted = match (parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(quoted), Some(_)) => quoted,
        _ => return Err("version_text returns no quoted string".into()),
    };
    split_version(quoted)
}

/// Parses `pve-manager/8.2.4/faa83925c9641325 (running kernel: 6.8.8-2-pve)`.
pub fn parse_pveversion(text: &str) -> Result<PveVersion, String> {
    let first = text.split_ascii_whitespace().next().unwrap_or("");
    let rest = first
        .strip_prefix("pve-manager/")
        .ok_or_else(|| format!("{first:?} does not start with pve-manager/"))?;
    split_version(rest)
}

fn split_version(text: &str) -> Result<PveVersion, String> {
    let (version, repoid) = match text.split_once('/') {
        Some((v, r)) => (v, Some(r.to_owned())),
        None => (text, None),
    };
    let looks_right = version.starts_with(|c: char| c.is_ascii_digit())
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-~+".contains(&b));
    if !looks_right {
        return Err(format!("version {version:?} does not look like one"));
    }
    Ok(PveVersion {
        version: version.to_owned(),
        repoid,
    })
}

/// A one-line file (`osrelease`, the ZFS module version): the trimmed line, not empty.
pub fn parse_line(text: &str) -> Result<String, String> {
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() || line.contains(char::is_whitespace) || line.contains('\0') {
        return Err(format!("{line:?} is not a version"));
    }
    Ok(line.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fixtures() {
        let expected = PveVersion {
            version: "8.2.4".into(),
            repoid: Some("faa83925c9641325".into()),
        };
        assert_eq!(
            parse_pvecfg(include_str!(
                "../../../fixtures/pve-node/usr/share/perl5/PVE/pvecfg.pm"
            )),
            Ok(expected.clone())
        );
        assert_eq!(
            parse_pveversion(include_str!(
                "../../../fixtures/pve-node/cmd/pveversion.txt"
            )),
            Ok(expected)
        );
        assert_eq!(
            parse_line(include_str!(
                "../../../fixtures/pve-node/sys/module/zfs/version"
            )),
            Ok("2.2.4-pve1".into())
        );
        assert_eq!(
            parse_line(include_str!(
                "../../../fixtures/pve-node/proc/sys/kernel/osrelease"
            )),
            Ok("6.8.8-2-pve".into())
        );
    }

    #[test]
    fn broken() {
        assert!(parse_pvecfg("").is_err());
        assert!(parse_pvecfg("sub version_text {\n").is_err());
        assert!(parse_pvecfg("sub version_text { return 'garbage here'; }").is_err());
        assert!(parse_pvecfg("sub version_text { return '8.2.4/faa8").is_err());
        assert!(parse_pveversion("").is_err());
        assert!(parse_pveversion("proxmox-ve: 8.2.0").is_err());
        assert!(parse_line("").is_err());
        assert!(parse_line("\n").is_err());
        assert!(parse_line("two words").is_err());
    }
}
