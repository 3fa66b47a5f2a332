//! The HA manager (pve-ha-manager): its resources `/etc/pve/ha/resources.cfg` (section config,
//! `vm: 100` / `ct: 101` with `state`, `group`, `max_restart`, ...), the CRM master's
//! `/etc/pve/ha/manager_status` (`{"master_node": .., "node_status": {..}, "service_status":
//! {"vm:100": {"node": .., "state": .., "running": ..}}, "timestamp": ..}`) and each node's
//! `/etc/pve/nodes/<node>/lrm_status` (`{"state": .., "mode": .., "timestamp": ..}`), all
//! written by `PVE::HA::Tools::write_json_to_file` (`encode_json`, one line).
//!
//! The state shown for a service is pve-ha-manager `PVE::HA::Tools::get_verbose_service_state`,
//! as `ha-manager status` and the GUI show it.

use std::collections::BTreeMap;

use common::sample::{HaNode, HaService, HaStatus};
use serde_json::{Map, Value};

use super::json;
use super::problem::{quote, Problems};
use super::section_config;

/// A resource of `resources.cfg`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResourceConf {
    /// `vm:100`
    pub sid: String,
    pub vmid: u32,
    /// `state` as written: `started` (the default; `enabled` is an old name of it),
    /// `stopped`, `disabled`, `ignored`.
    pub state: Option<String>,
    pub group: Option<String>,
}

impl ResourceConf {
    /// The state asked for.
    pub fn requested(&self) -> &str {
        match self.state.as_deref() {
            None | Some("enabled") => "started",
            Some(state) => state,
        }
    }
}

/// The `vm` and `ct` sections of `resources.cfg`; the id must be a VMID.
pub fn parse_resources(text: &str, problems: &mut Problems) -> Result<Vec<ResourceConf>, String> {
    let sections = section_config::parse(
        text,
        |kind, id| !matches!(kind, "vm" | "ct") || id.parse::<u32>().is_ok(),
        problems,
    );
    Ok(sections
        .iter()
        .filter(|s| matches!(s.kind.as_str(), "vm" | "ct"))
        .filter_map(|s| {
            let vmid = s.id.parse().ok()?;
            Some(ResourceConf {
                sid: format!("{}:{}", s.kind, s.id),
                vmid,
                state: s.value("state").map(str::to_owned),
                group: s.value("group").map(str::to_owned),
            })
        })
        .collect())
}

/// What `manager_status` says.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ManagerStatus {
    pub master: Option<String>,
    pub timestamp: Option<u64>,
    /// Node → CRM node state.
    pub nodes: BTreeMap<String, String>,
    pub services: BTreeMap<String, ServiceState>,
}

/// A service as the CRM keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceState {
    pub node: Option<String>,
    pub state: Option<String>,
    pub running: bool,
}

/// Parses `manager_status`; an empty file is a cluster whose CRM never ran.
pub fn parse_manager_status(text: &str, problems: &mut Problems) -> Result<ManagerStatus, String> {
    if text.trim().is_empty() {
        return Ok(ManagerStatus::default());
    }
    let value = json::parse(text, problems)?;
    let object = value.as_object().ok_or("not a JSON object")?;
    let mut status = ManagerStatus {
        master: object
            .get("master_node")
            .and_then(Value::as_str)
            .map(str::to_owned),
        timestamp: object.get("timestamp").and_then(Value::as_u64),
        ..ManagerStatus::default()
    };
    for (node, state) in entries(object, "node_status", problems) {
        match state.as_str() {
            Some(state) => {
                status.nodes.insert(node.clone(), state.to_owned());
            }
            None => problems.file(format!("node_status of {}: not a string", quote(node))),
        }
    }
    for (sid, service) in entries(object, "service_status", problems) {
        let Some(service) = service.as_object() else {
            problems.file(format!("service_status of {}: not an object", quote(sid)));
            continue;
        };
        let string = |key: &str| service.get(key).and_then(Value::as_str).map(str::to_owned);
        status.services.insert(
            sid.clone(),
            ServiceState {
                node: string("node"),
                state: string("state"),
                running: service.get("running").is_some_and(|r| {
                    r.as_u64().is_some_and(|n| n != 0) || r.as_bool() == Some(true)
                }),
            },
        );
    }
    Ok(status)
}

fn entries<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    problems: &mut Problems,
) -> impl Iterator<Item = (&'a String, &'a Value)> {
    let map = match object.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(map),
        Some(_) => {
            problems.file(format!("\"{key}\" is not an object"));
            None
        }
    };
    map.into_iter().flatten()
}

/// A node's LRM status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LrmStatus {
    pub state: Option<String>,
    pub mode: Option<String>,
    pub timestamp: Option<u64>,
}

pub fn parse_lrm_status(text: &str, problems: &mut Problems) -> Result<LrmStatus, String> {
    let value = json::parse(text, problems)?;
    let object = value.as_object().ok_or("not a JSON object")?;
    let string = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_owned);
    Ok(LrmStatus {
        state: string("state"),
        mode: string("mode"),
        timestamp: object.get("timestamp").and_then(Value::as_u64),
    })
}

/// `get_verbose_service_state`.
pub fn verbose_state(
    service: Option<&ServiceState>,
    conf: Option<&ResourceConf>,
    node_known: bool,
) -> String {
    let Some(conf) = conf else {
        return "deleting".into();
    };
    let request = conf.requested();
    if request == "ignored" {
        return "ignored".into();
    }
    if !node_known {
        return "not found".into();
    }
    let Some(current) = service.and_then(|s| s.state.as_deref()) else {
        return "queued".into();
    };
    let running = service.is_some_and(|s| s.running);
    match current {
        "stopped" if request == "started" => "starting".into(),
        "stopped" if request == "disabled" => "disabled".into(),
        "started" if !running => "starting".into(),
        "started" if matches!(request, "stopped" | "disabled") => "stopping".into(),
        "error" if request == "disabled" => "clearing error flag".into(),
        other => other.to_owned(),
    }
}

/// The whole picture: services from the CRM's status and from `resources.cfg` (those the CRM
/// has not seen yet too), nodes with their LRM. `guest_node` says where a guest lives
/// (`.vmlist`), as Proxmox fills a resource's node from it.
pub fn status(
    resources: &[ResourceConf],
    manager: &ManagerStatus,
    lrm: &BTreeMap<String, LrmStatus>,
    guest_node: impl Fn(u32) -> Option<String>,
    quorate: Option<bool>,
) -> HaStatus {
    let by_sid: BTreeMap<&str, &ResourceConf> =
        resources.iter().map(|r| (r.sid.as_str(), r)).collect();
    let mut services: Vec<HaService> = Vec::new();
    let mut sids: Vec<&str> = manager.services.keys().map(String::as_str).collect();
    sids.extend(
        resources
            .iter()
            .map(|r| r.sid.as_str())
            .filter(|s| !manager.services.contains_key(*s)),
    );
    for sid in sids {
        let conf = by_sid.get(sid).copied();
        let service = manager.services.get(sid);
        let conf_node = conf.and_then(|c| guest_node(c.vmid));
        let node = service.and_then(|s| s.node.clone()).or(conf_node.clone());
        services.push(HaService {
            sid: sid.to_owned(),
            node,
            crm_state: service.and_then(|s| s.state.clone()),
            request_state: conf.map(|c| c.requested().to_owned()),
            state: verbose_state(service, conf, conf_node.is_some()),
            group: conf.and_then(|c| c.group.clone()),
        });
    }
    let nodes = manager
        .nodes
        .iter()
        .map(|(name, state)| {
            let lrm = lrm.get(name);
            HaNode {
                name: name.clone(),
                state: state.clone(),
                lrm_state: lrm.and_then(|l| l.state.clone()),
                lrm_mode: lrm.and_then(|l| l.mode.clone()),
                lrm_timestamp: lrm.and_then(|l| l.timestamp),
            }
        })
        .collect();
    HaStatus {
        quorate,
        master: manager.master.clone(),
        master_timestamp: manager.timestamp,
        nodes,
        services,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn conf(state: &str) -> ResourceConf {
        ResourceConf {
            sid: "vm:1".into(),
            vmid: 1,
            state: Some(state.into()),
            group: None,
        }
    }

    fn service(state: &str, running: bool) -> ServiceState {
        ServiceState {
            node: Some("pve1".into()),
            state: Some(state.into()),
            running,
        }
    }

    #[test]
    fn verbose_states_as_ha_manager_shows_them() {
        assert_eq!(verbose_state(None, None, true), "deleting");
        assert_eq!(verbose_state(None, Some(&conf("ignored")), true), "ignored");
        assert_eq!(
            verbose_state(None, Some(&conf("started")), false),
            "not found"
        );
        assert_eq!(verbose_state(None, Some(&conf("started")), true), "queued");
        let s = service("stopped", false);
        assert_eq!(
            verbose_state(Some(&s), Some(&conf("started")), true),
            "starting"
        );
        assert_eq!(
            verbose_state(Some(&s), Some(&conf("disabled")), true),
            "disabled"
        );
        assert_eq!(
            verbose_state(Some(&s), Some(&conf("stopped")), true),
            "stopped"
        );
        let s = service("started", true);
        assert_eq!(
            verbose_state(Some(&s), Some(&conf("started")), true),
            "started"
        );
        assert_eq!(
            verbose_state(Some(&s), Some(&conf("stopped")), true),
            "stopping"
        );
        let s = service("started", false);
        assert_eq!(
            verbose_state(Some(&s), Some(&conf("stopped")), true),
            "starting"
        );
        let s = service("error", false);
        assert_eq!(
            verbose_state(Some(&s), Some(&conf("started")), true),
            "error"
        );
        assert_eq!(
            verbose_state(Some(&s), Some(&conf("disabled")), true),
            "clearing error flag"
        );
    }

    #[test]
    fn the_fixture_cluster() {
        let mut problems = Problems::new();
        let resources = parse_resources(
            include_str!("../../../fixtures/pve-node/etc/pve/ha/resources.cfg"),
            &mut problems,
        )
        .unwrap();
        let manager = parse_manager_status(
            include_str!("../../../fixtures/pve-node/etc/pve/ha/manager_status"),
            &mut problems,
        )
        .unwrap();
        let lrm: BTreeMap<String, LrmStatus> = ["pve1", "pve2"]
            .into_iter()
            .map(|n| {
                let text = std::fs::read_to_string(format!(
                    "{}/../fixtures/pve-node/etc/pve/nodes/{n}/lrm_status",
                    env!("CARGO_MANIFEST_DIR")
                ))
                .unwrap();
                (
                    n.to_owned(),
                    parse_lrm_status(&text, &mut problems).unwrap(),
                )
            })
            .collect();
        assert!(problems.is_empty(), "{problems:?}");
        let status = status(
            &resources,
            &manager,
            &lrm,
            |vmid| Some(if vmid < 200 { "pve1" } else { "pve2" }.to_owned()),
            Some(true),
        );
        assert_eq!(status.master.as_deref(), Some("pve2"));
        let services: Vec<(&str, &str)> = status
            .services
            .iter()
            .map(|s| (s.sid.as_str(), s.state.as_str()))
            .collect();
        assert_eq!(
            services,
            [
                ("ct:101", "started"),
                ("vm:100", "started"),
                ("vm:102", "error")
            ]
        );
        assert_eq!(status.nodes[0].lrm_state.as_deref(), Some("active"));
    }

    #[test]
    fn damaged_status_files() {
        let mut problems = Problems::new();
        assert!(parse_manager_status("{\"master_node\":", &mut problems).is_err());
        assert_eq!(
            parse_manager_status("", &mut problems).unwrap(),
            ManagerStatus::default()
        );
        let status = parse_manager_status(
            "{\"node_status\":{\"a\":1,\"b\":\"online\"},\"service_status\":[]}",
            &mut problems,
        )
        .unwrap();
        assert_eq!(status.nodes.len(), 1);
        assert_eq!(problems.len(), 2);
    }
}
