//! The node's name: `/proc/sys/kernel/hostname`, else `/etc/hostname`.

/// The first line, trimmed; an empty file is an error. A name with spaces or control
/// characters is not one the kernel or Proxmox would have.
pub fn parse(text: &str) -> Result<String, String> {
    let name = text.lines().next().unwrap_or("").trim();
    if name.is_empty() {
        return Err("file is empty".into());
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{} is not a host name",
            super::problem::quote(name)
        ));
    }
    Ok(name.to_owned())
}

/// `pve1.example.com` → `pve1`: Proxmox names nodes by the short host name
/// (pve-common `PVE::INotify::nodename`).
pub fn short_name(hostname: &str) -> &str {
    hostname.split('.').next().unwrap_or(hostname)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fixture_and_broken() {
        assert_eq!(
            parse(include_str!("../../../fixtures/pve-node/etc/hostname")),
            Ok("pve1".into())
        );
        assert_eq!(
            parse("pve2.example.com\n# comment\n"),
            Ok("pve2.example.com".into())
        );
        for bad in ["", "\n", "two words", "a\u{1}b"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(short_name("pve1.example.com"), "pve1");
        assert_eq!(short_name("pve1"), "pve1");
    }
}
