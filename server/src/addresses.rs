//! Connections per client address, so that one address cannot hold every connection slot
//! (`max_connections_per_address`). A connection counts from its accept until it ends or its
//! WebSocket channel joins: an agent that authenticated is a host, not a guest, and takes one
//! of the slots kept for agents instead. Addresses in `[http] trusted_proxies`, and 127.0.0.1
//! and ::1, are not capped (a proxy carries every client; see `listener::is_capped`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};

#[derive(Debug, Default)]
pub struct Addresses {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    per_address: HashMap<IpAddr, usize>,
    /// Which address each counted connection is from.
    connections: HashMap<u64, IpAddr>,
}

impl Addresses {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts connection `conn_id` from `address` unless that address already has `max`;
    /// whether it may go on.
    pub fn admit(&self, conn_id: u64, address: IpAddr, max: usize) -> bool {
        let mut state = self.lock();
        let open = state.per_address.entry(address).or_insert(0);
        if *open >= max {
            return false;
        }
        *open += 1;
        state.connections.insert(conn_id, address);
        true
    }

    /// Connection `conn_id` ended or joined as an agent: it no longer counts. Idempotent.
    pub fn release(&self, conn_id: u64) {
        let mut state = self.lock();
        if let Some(address) = state.connections.remove(&conn_id) {
            if let Some(open) = state.per_address.get_mut(&address) {
                *open = open.saturating_sub(1);
                if *open == 0 {
                    state.per_address.remove(&address);
                }
            }
        }
    }

    /// Connections counted for `address` now.
    pub fn open(&self, address: IpAddr) -> usize {
        self.lock().per_address.get(&address).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_at_most_its_share_and_released_slots_come_back() {
        let addresses = Addresses::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let b: IpAddr = "192.0.2.2".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert!(addresses.admit(1, a, 2));
        assert!(addresses.admit(2, a, 2));
        assert!(!addresses.admit(3, a, 2));
        assert!(addresses.admit(4, b, 2), "other addresses unaffected");
        addresses.release(1);
        addresses.release(1);
        assert_eq!(addresses.open(a), 1);
        assert!(addresses.admit(5, a, 2));
        addresses.release(2);
        addresses.release(5);
        assert_eq!(addresses.open(a), 0);
    }
}
