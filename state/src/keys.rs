//! Key layout of the sled trees. Numbers are big-endian so that byte order is numeric order;
//! text parts are separated by a 0 byte (station ids and OCPP ids never contain one).

/// Tree names.
pub(crate) mod tree {
    pub(crate) const STATIONS: &str = "stations";
    pub(crate) const CONNECTORS: &str = "connectors";
    pub(crate) const TRANSACTIONS: &str = "transactions";
    pub(crate) const TX_BY_OCPP: &str = "tx_by_ocpp";
    pub(crate) const TX_STARTS_16: &str = "tx_starts_16";
    pub(crate) const TX_EVENTS: &str = "tx_events";
    pub(crate) const SAMPLES: &str = "samples";
    pub(crate) const META: &str = "meta";
    pub(crate) const OUTBOX: &str = "outbox";
    pub(crate) const OUTBOX_PARKED: &str = "outbox_parked";
    pub(crate) const OUTBOX_COALESCE: &str = "outbox_coalesce";
    pub(crate) const PEERS: &str = "peers";
    pub(crate) const EVSE_UIDS: &str = "evse_uids";
    pub(crate) const EVSE_BY_UID: &str = "evse_by_uid";
    pub(crate) const EVSE_STATES: &str = "evse_states";
    pub(crate) const DOCS: &str = "docs";
    pub(crate) const DOC_ORDER: &str = "doc_order";
    pub(crate) const INDEXES: &str = "indexes";
    /// Every tree, in the order [`crate::Txn`] indexes them.
    pub(crate) const ALL: [&str; 18] = [
        STATIONS,
        CONNECTORS,
        TRANSACTIONS,
        TX_BY_OCPP,
        TX_STARTS_16,
        TX_EVENTS,
        SAMPLES,
        META,
        OUTBOX,
        OUTBOX_PARKED,
        OUTBOX_COALESCE,
        PEERS,
        EVSE_UIDS,
        EVSE_BY_UID,
        EVSE_STATES,
        DOCS,
        DOC_ORDER,
        INDEXES,
    ];
}

/// Index of each tree in [`tree::ALL`].
pub(crate) mod idx {
    pub(crate) const STATIONS: usize = 0;
    pub(crate) const CONNECTORS: usize = 1;
    pub(crate) const TRANSACTIONS: usize = 2;
    pub(crate) const TX_BY_OCPP: usize = 3;
    pub(crate) const TX_STARTS_16: usize = 4;
    pub(crate) const TX_EVENTS: usize = 5;
    pub(crate) const SAMPLES: usize = 6;
    pub(crate) const META: usize = 7;
    pub(crate) const OUTBOX: usize = 8;
    pub(crate) const OUTBOX_PARKED: usize = 9;
    pub(crate) const OUTBOX_COALESCE: usize = 10;
    pub(crate) const PEERS: usize = 11;
    pub(crate) const EVSE_UIDS: usize = 12;
    pub(crate) const EVSE_BY_UID: usize = 13;
    pub(crate) const EVSE_STATES: usize = 14;
    pub(crate) const DOCS: usize = 15;
    pub(crate) const DOC_ORDER: usize = 16;
    pub(crate) const INDEXES: usize = 17;
}

/// `peer \0 seq(be64)`
pub(crate) fn outbox(peer: &str, seq: u64) -> Vec<u8> {
    let mut k = station_prefix(peer);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// `peer \0 coalesce key`
pub(crate) fn coalesce(peer: &str, key: &str) -> Vec<u8> {
    let mut k = station_prefix(peer);
    k.extend_from_slice(key.as_bytes());
    k
}

/// `meta` key of the 1.6 transaction id counter.
pub(crate) const TX16_COUNTER: &[u8] = b"tx16_counter";

/// `station \0` — prefix of every per-station key.
pub(crate) fn station_prefix(station: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(station.len() + 1);
    k.extend_from_slice(station.as_bytes());
    k.push(0);
    k
}

/// `station \0 evse(be32) connector(be32)`
pub(crate) fn connector(station: &str, evse_id: u32, connector_id: u32) -> Vec<u8> {
    let mut k = station_prefix(station);
    k.extend_from_slice(&evse_id.to_be_bytes());
    k.extend_from_slice(&connector_id.to_be_bytes());
    k
}

/// `station \0 ocpp_tx_id`
pub(crate) fn tx_by_ocpp(station: &str, ocpp_tx_id: &str) -> Vec<u8> {
    let mut k = station_prefix(station);
    k.extend_from_slice(ocpp_tx_id.as_bytes());
    k
}

/// `station \0 ocpp_tx_id \0 seq(be32)`
pub(crate) fn tx_event(station: &str, ocpp_tx_id: &str, seq_no: u32) -> Vec<u8> {
    let mut k = tx_by_ocpp(station, ocpp_tx_id);
    k.push(0);
    k.extend_from_slice(&seq_no.to_be_bytes());
    k
}

/// `tx_id \0 time(be64, ms since epoch, sign bit flipped) identity(be64)`: samples sort by
/// station time, and a retried message writes the same keys again instead of new ones.
pub(crate) fn sample(tx_id: &str, timestamp_ms: i64, identity: u64) -> Vec<u8> {
    let mut k = sample_prefix(tx_id);
    k.extend_from_slice(&((timestamp_ms as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(&identity.to_be_bytes());
    k
}

/// FNV-1a: a hash that is stable across releases and platforms (std's hasher is not).
pub(crate) fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// `tx_id \0`
pub(crate) fn sample_prefix(tx_id: &str) -> Vec<u8> {
    station_prefix(tx_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connector_keys_sort_numerically_within_a_station() {
        let mut keys = vec![
            connector("A", 10, 1),
            connector("A", 2, 1),
            connector("A", 2, 0),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                connector("A", 2, 0),
                connector("A", 2, 1),
                connector("A", 10, 1)
            ]
        );
    }

    #[test]
    fn a_station_prefix_does_not_match_a_longer_station_id() {
        assert!(!connector("AB", 1, 1).starts_with(&station_prefix("A")));
        assert!(connector("A", 1, 1).starts_with(&station_prefix("A")));
    }
}
