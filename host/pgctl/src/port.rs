//! Choosing a free TCP port on 127.0.0.1.
//!
//! Ports are drawn at random from below the kernel's ephemeral range, so that a client
//! connection cannot grab a stopped cluster's port before it restarts (which a port handed
//! out by binding port 0 is prone to).

use std::hash::{BuildHasher, RandomState};
use std::net::{Ipv4Addr, TcpListener};

use crate::PgCtlError;

/// Lowest port drawn.
const LOWEST: u16 = 15_000;

/// Random draws before falling back to letting the kernel choose.
const ATTEMPTS: usize = 64;

/// Whether `port` can be bound on 127.0.0.1 right now.
pub(crate) fn is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// A port on 127.0.0.1 that is free right now.
pub(crate) fn pick_free() -> Result<u16, PgCtlError> {
    let end = ephemeral_start().max(LOWEST + 1);
    let span = u64::from(end - LOWEST);
    let random = RandomState::new();
    for attempt in 0..ATTEMPTS {
        let draw = random.hash_one(attempt) % span;
        let port = LOWEST + u16::try_from(draw).unwrap_or_default();
        if port != 5432 && is_free(port) {
            return Ok(port);
        }
    }
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|source| PgCtlError::io("bind a TCP port on", "127.0.0.1", source))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|source| PgCtlError::io("read the bound port of", "127.0.0.1", source))
}

/// The first port of the kernel's ephemeral range (32768 when unknown).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_distinct_bindable_ports_outside_the_ephemeral_range() {
        // Another test (or process) may take a port between the pick and
        // the bind: pick again then.
        let (first, held) = (0..8)
            .find_map(|_| {
                let port = pick_free().ok()?;
                let held = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).ok()?;
                Some((port, held))
            })
            .expect("a free port that stays free long enough to bind it");
        assert!(!is_free(first));
        let second = pick_free().unwrap();
        assert_ne!(first, second);
        assert!(first >= LOWEST && first < ephemeral_start().max(LOWEST + 1));
        drop(held);
    }
}
