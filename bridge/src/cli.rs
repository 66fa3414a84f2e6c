//! Operator commands that talk to the running daemon's admin API (sled allows one process per
//! database, so tools never open the store while the daemon runs): `status`, `stations`,
//! `sessions`, `outbox` (and retry / drop of parked pushes), `peers` (and `token-a`, `rotate`,
//! `unregister`; `token-a` alone falls back to the store when no daemon answers), `cdrs` (held
//! CDRs, `reprice`, `credit`).
//!
//! Rendering is pure (JSON in, text out) so each view is unit-tested; `--json` prints the admin
//! API's answer unchanged for scripts.

use std::fmt::Write as _;

use serde_json::Value;

/// Where the admin API is and how to authenticate.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client for `base` (e.g. `http://127.0.0.1:9200`).
    pub fn new(base: impl Into<String>, token: Option<String>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()?;
        Ok(AdminClient {
            base: base.into().trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    /// The admin base URL for a listen address: a wildcard address is reached on loopback.
    pub fn base_for(listen: std::net::SocketAddr) -> String {
        let ip = match listen.ip() {
            std::net::IpAddr::V4(v4) if v4.is_unspecified() => {
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            }
            std::net::IpAddr::V6(v6) if v6.is_unspecified() => {
                std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
            }
            ip => ip,
        };
        format!("http://{}", std::net::SocketAddr::new(ip, listen.port()))
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach the daemon's admin API at {} ({e}); is it running?",
                self.base
            )
        })?;
        let status = resp.status().as_u16();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    /// `GET {base}{path}`.
    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    /// `POST {base}{path}` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// Like [`AdminClient::post`], but `Ok(None)` when nothing listens on the admin address
    /// (the daemon is not running): the caller may then work on the stopped daemon's store.
    pub async fn post_if_running(
        &self,
        path: &str,
        body: &Value,
    ) -> anyhow::Result<Option<(u16, Value)>> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                Ok(Some((
                    status,
                    resp.json::<Value>().await.unwrap_or(Value::Null),
                )))
            }
            Err(e) if e.is_connect() => Ok(None),
            Err(e) => Err(anyhow::anyhow!(
                "the daemon's admin API at {} failed: {e}",
                self.base
            )),
        }
    }
}

fn s(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `status`: health, connected stations, peers and their queues.
pub fn render_status(health: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "status: {}", s(&health["status"]));
    let c = &health["stations_connected"];
    let _ = writeln!(
        out,
        "stations connected: {} (OCPP 1.6), {} (OCPP 2.0.1)",
        s(&c["1.6"]),
        s(&c["2.0.1"])
    );
    let peers = health["peers"].as_array().cloned().unwrap_or_default();
    if peers.is_empty() {
        let _ = writeln!(out, "OCPI peers: none registered");
    }
    for p in peers {
        let o = &p["outbox"];
        let _ = writeln!(
            out,
            "peer {}: {} — outbox {} queued (oldest {} s), {} parked",
            s(&p["id"]),
            s(&p["registration"]),
            s(&o["depth"]),
            o["oldest_age_seconds"]
                .as_f64()
                .map_or("-".into(), |a| format!("{a:.0}")),
            s(&o["parked"]),
        );
    }
    if !health["state_recovered_from_corruption"].is_null() {
        let _ = writeln!(
            out,
            "WARNING: state was corrupt and moved aside to {}",
            s(&health["state_recovered_from_corruption"])
        );
    }
    out
}

/// `stations`: one line per station, one per connector.
pub fn render_stations(stations: &Value) -> String {
    let mut out = String::new();
    for st in stations.as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{} {} OCPP {} {} {} fw {} last seen {}",
            s(&st["id"]),
            if st["online"].as_bool() == Some(true) {
                "online "
            } else {
                "offline"
            },
            s(&st["ocpp_version"]),
            s(&st["vendor"]),
            s(&st["model"]),
            s(&st["firmware_version"]),
            s(&st["last_seen"]),
        );
        for c in st["connectors"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "  evse {} connector {}: {}{}",
                s(&c["evse_id"]),
                s(&c["connector_id"]),
                s(&c["status"]),
                c["error_code"]
                    .as_str()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default(),
            );
        }
    }
    if out.is_empty() {
        out.push_str("no stations yet\n");
    }
    out
}

/// `sessions`: one line per OCPI session.
pub fn render_sessions(sessions: &Value) -> String {
    let mut out = String::new();
    for x in sessions.as_array().into_iter().flatten() {
        let cost = &x["total_cost"];
        let _ = writeln!(
            out,
            "{} {} {} kWh at {}/{} token {} ({}) since {}{}",
            s(&x["id"]),
            s(&x["status"]),
            s(&x["kwh"]),
            s(&x["location_id"]),
            s(&x["evse_uid"]),
            s(&x["cdr_token"]["uid"]),
            s(&x["auth_method"]),
            s(&x["start_date_time"]),
            if cost.is_null() {
                String::new()
            } else {
                format!(
                    ", cost {} {} excl. VAT",
                    s(&cost["excl_vat"]),
                    s(&x["currency"])
                )
            },
        );
    }
    if out.is_empty() {
        out.push_str("no sessions yet\n");
    }
    out
}

/// One line of a CDR: id, energy, cost, token, credit reference.
fn cdr_line(x: &Value) -> String {
    let credit = if x["credit"] == Value::Bool(true) {
        format!(" CREDIT for {}", s(&x["credit_reference_id"]))
    } else {
        String::new()
    };
    format!(
        "{} {} kWh, cost {} {} excl. VAT, token {} ({}/{}){credit}",
        s(&x["id"]),
        s(&x["total_energy"]),
        s(&x["total_cost"]["excl_vat"]),
        s(&x["currency"]),
        s(&x["cdr_token"]["uid"]),
        s(&x["cdr_token"]["country_code"]),
        s(&x["cdr_token"]["party_id"]),
    )
}

/// `cdrs`: one line per stored CDR (credit CDRs marked).
pub fn render_cdrs(cdrs: &Value) -> String {
    let mut out = String::new();
    for x in cdrs.as_array().into_iter().flatten() {
        let _ = writeln!(out, "{}", cdr_line(x));
    }
    if out.is_empty() {
        out.push_str("no CDRs yet\n");
    }
    out
}

/// `cdrs held`: CDRs whose price could not be computed, with why.
pub fn render_held_cdrs(held: &Value) -> String {
    let mut out = String::new();
    for x in held.as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{} HELD since {} ({} kWh, party {}): {}",
            s(&x["id"]),
            s(&x["held_at"]),
            s(&x["total_energy"]),
            s(&x["party"]),
            s(&x["reason"]),
        );
    }
    if out.is_empty() {
        out.push_str("no held CDRs\n");
    } else {
        out.push_str("fix the tariff, then: ocpp-ocpi-bridge cdrs reprice ID\n");
    }
    out
}

/// `cdrs reprice` / `cdrs credit`: what was sent, or the refusal.
pub fn render_correction(v: &Value) -> String {
    let mut out = String::new();
    if let Some(e) = v["error"].as_str() {
        let _ = writeln!(out, "refused: {e}");
    }
    for (key, label) in [
        ("released", "released"),
        ("credit", "credit"),
        ("cdr", "new CDR"),
    ] {
        if v[key].is_object() {
            let _ = writeln!(out, "{label}: {}", cdr_line(&v[key]));
        }
    }
    out
}

/// `{peer} #{seq} {method} {module} {target}` of an outbox entry.
fn entry_head(e: &Value) -> String {
    let target = e["render"]
        .as_str()
        .map_or_else(|| s(&e["path"]), str::to_owned);
    format!(
        "{} #{} {} {} {}",
        s(&e["peer"]),
        s(&e["seq"]),
        s(&e["method"]),
        s(&e["module"]),
        target
    )
}

/// `outbox`: queue depth per peer, the head of each queue and every parked push.
pub fn render_outbox(outbox: &Value) -> String {
    let mut out = String::new();
    for p in outbox["peers"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "peer {}: {} queued, {} parked",
            s(&p["peer"]),
            s(&p["depth"]),
            s(&p["parked"])
        );
    }
    for e in outbox["queued"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  queued {} attempts {}{}",
            entry_head(e),
            s(&e["attempts"]),
            e["last_error"]
                .as_str()
                .map(|x| format!(" last error: {x}"))
                .unwrap_or_default(),
        );
    }
    for e in outbox["parked"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  PARKED {}: {}",
            entry_head(e),
            s(&e["parked_reason"]),
        );
    }
    if out.is_empty() {
        out.push_str("outbox empty\n");
    }
    out
}

/// `peers`: registration, version, roles and endpoints.
pub fn render_peers(peers: &Value) -> String {
    let mut out = String::new();
    for p in peers.as_array().into_iter().flatten() {
        let roles: Vec<String> = p["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                format!(
                    "{} {}{}",
                    s(&r["role"]),
                    s(&r["country_code"]),
                    s(&r["party_id"])
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "{} {} OCPI {} ({}) initiated by {} — {}",
            s(&p["id"]),
            s(&p["status"]),
            s(&p["version"]),
            roles.join(", "),
            s(&p["initiated_by"]),
            s(&p["versions_url"]),
        );
        let quirks: Vec<&str> = p["quirks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !quirks.is_empty() {
            let _ = writeln!(out, "  quirks: {}", quirks.join(", "));
        }
        for e in p["endpoints"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "  {} {} {}",
                s(&e["identifier"]),
                s(&e["role"]),
                s(&e["url"])
            );
        }
    }
    if out.is_empty() {
        out.push_str("no OCPI peers\n");
    }
    out
}

/// `peers token-a`: the token alone on its line (for scripts; the hint goes to stderr).
pub fn render_token_a(answer: &Value) -> String {
    format!("{}\n", s(&answer["token_a"]))
}

/// `peers rotate PEER`: the outcome.
pub fn render_rotated(answer: &Value) -> String {
    if answer["rotated"] == Value::Bool(true) {
        let p = &answer["peer"];
        format!(
            "{}: credentials rotated (new tokens both ways, {} endpoints refreshed); the old token is refused from now on\n",
            s(&p["id"]),
            p["endpoints"].as_array().map_or(0, Vec::len)
        )
    } else {
        format!("{}\n", s(&answer["error"]))
    }
}

/// `peers unregister PEER`: the outcome.
pub fn render_unregistered(answer: &Value) -> String {
    match answer["remote"].as_str() {
        Some("accepted") => format!(
            "{}: unregistered (DELETE accepted by the peer), forgotten locally\n",
            s(&answer["unregistered"])
        ),
        _ if !answer["error"].is_null() => format!("{}\n", s(&answer["error"])),
        _ => format!("{answer}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_shows_health_stations_and_peer_queues() {
        let text = render_status(&json!({
            "status": "ok", "stations_connected": {"1.6": 2, "2.0.1": 1},
            "peers": [{"id": "hub", "registration": "registered",
                       "outbox": {"depth": 3, "oldest_age_seconds": 12.4, "parked": 1}}],
            "state_recovered_from_corruption": null
        }));
        assert!(text.contains("status: ok"));
        assert!(text.contains("2 (OCPP 1.6), 1 (OCPP 2.0.1)"));
        assert!(
            text.contains("peer hub: registered — outbox 3 queued (oldest 12 s), 1 parked"),
            "{text}"
        );
    }

    #[test]
    fn stations_list_connectors_and_errors() {
        let text = render_stations(&json!([{"id": "CS1", "online": true, "ocpp_version": "1.6",
            "vendor": "V", "model": "M", "firmware_version": "1.0", "last_seen": "t",
            "connectors": [{"evse_id": 1, "connector_id": 1, "status": "Faulted", "error_code": "GroundFailure"}]}]));
        assert!(text.starts_with("CS1 online  OCPP 1.6 V M"), "{text}");
        assert!(text.contains("evse 1 connector 1: Faulted (GroundFailure)"));
        assert_eq!(render_stations(&json!([])), "no stations yet\n");
    }

    #[test]
    fn cdr_views_mark_credits_holds_and_refusals() {
        let cdr = json!({"id": "A", "total_energy": 5, "total_cost": {"excl_vat": 1.75},
            "currency": "EUR", "cdr_token": {"uid": "TOK", "country_code": "NL", "party_id": "EMS"}});
        let credit = json!({"id": "A-C", "total_energy": 5, "total_cost": {"excl_vat": -1.75},
            "currency": "EUR", "credit": true, "credit_reference_id": "A",
            "cdr_token": {"uid": "TOK", "country_code": "NL", "party_id": "EMS"}});
        let text = render_cdrs(&json!([cdr, credit]));
        assert!(
            text.contains("A 5 kWh, cost 1.75 EUR excl. VAT, token TOK (NL/EMS)\n"),
            "{text}"
        );
        assert!(
            text.contains("A-C 5 kWh, cost -1.75 EUR excl. VAT, token TOK (NL/EMS) CREDIT for A"),
            "{text}"
        );
        assert_eq!(render_cdrs(&json!([])), "no CDRs yet\n");
        let held = render_held_cdrs(&json!([{"id": "B", "held_at": "t", "total_energy": 2,
            "party": "NL/EMS", "reason": "currency mismatch"}]));
        assert!(
            held.contains("B HELD since t (2 kWh, party NL/EMS): currency mismatch"),
            "{held}"
        );
        assert!(held.contains("cdrs reprice ID"));
        assert_eq!(render_held_cdrs(&json!([])), "no held CDRs\n");
        let done = render_correction(&json!({"credit": credit, "cdr": cdr}));
        assert!(done.starts_with("credit: A-C"), "{done}");
        assert!(done.contains("new CDR: A 5 kWh"), "{done}");
        assert_eq!(
            render_correction(&json!({"error": "no such CDR"})),
            "refused: no such CDR\n"
        );
    }

    #[test]
    fn outbox_shows_parked_entries_with_reasons() {
        let text = render_outbox(&json!({
            "peers": [{"peer": "hub", "depth": 1, "parked": 1}],
            "queued": [{"peer": "hub", "seq": 5, "method": "PATCH", "module": "locations", "render": "evse:1:CS1", "attempts": 2, "last_error": "HTTP 503"}],
            "parked": [{"peer": "hub", "seq": 4, "method": "PUT", "module": "tariffs", "path": "/NL/BRG/T1", "parked_reason": "OCPI 2001 bad"}]
        }));
        assert!(text.contains("peer hub: 1 queued, 1 parked"));
        assert!(
            text.contains(
                "queued hub #5 PATCH locations evse:1:CS1 attempts 2 last error: HTTP 503"
            )
        );
        assert!(text.contains("PARKED hub #4 PUT tariffs /NL/BRG/T1: OCPI 2001 bad"));
    }

    #[test]
    fn sessions_and_peers_render() {
        let text = render_sessions(
            &json!([{"id": "S1", "status": "ACTIVE", "kwh": 1.5, "location_id": "LOC1",
            "evse_uid": "CS1-1", "cdr_token": {"uid": "AA"}, "auth_method": "WHITELIST",
            "start_date_time": "t", "total_cost": {"excl_vat": 0.5}, "currency": "EUR"}]),
        );
        assert!(text.contains("S1 ACTIVE 1.5 kWh at LOC1/CS1-1 token AA (WHITELIST) since t, cost 0.5 EUR excl. VAT"), "{text}");
        let text = render_peers(
            &json!([{"id": "hub", "status": "registered", "version": "2.2.1",
            "roles": [{"role": "HUB", "country_code": "NL", "party_id": "HUB"}], "initiated_by": "us",
            "versions_url": "http://h/versions", "endpoints": [{"identifier": "locations", "role": "RECEIVER", "url": "http://h/l"}]}]),
        );
        assert!(
            text.contains(
                "hub registered OCPI 2.2.1 (HUB NLHUB) initiated by us — http://h/versions"
            )
        );
        assert!(text.contains("  locations RECEIVER http://h/l"));
        assert!(!text.contains("quirks"), "{text}");
        let text = render_peers(
            &json!([{"id": "old", "status": "registered", "version": "2.1.1",
            "roles": [], "initiated_by": "us", "versions_url": "http://o/versions", "endpoints": [],
            "quirks": ["base64_token_2_1_1"]}]),
        );
        assert!(text.contains("old registered OCPI 2.1.1"), "{text}");
        assert!(text.contains("  quirks: base64_token_2_1_1"), "{text}");
    }

    #[test]
    fn peer_actions_render() {
        assert_eq!(
            render_token_a(&json!({"token_a": "abc", "versions_url": "http://x/ocpi/versions"})),
            "abc\n"
        );
        let text =
            render_rotated(&json!({"rotated": true, "peer": {"id": "hub", "endpoints": [{}, {}]}}));
        assert!(text.starts_with("hub: credentials rotated"), "{text}");
        assert!(text.contains("2 endpoints refreshed"), "{text}");
        assert_eq!(
            render_rotated(&json!({"rotated": false, "error": "rotation failed: x"})),
            "rotation failed: x\n"
        );
        assert!(
            render_unregistered(&json!({"unregistered": "hub", "remote": "accepted"}))
                .starts_with("hub: unregistered")
        );
        assert_eq!(
            render_unregistered(
                &json!({"unregistered": "hub", "remote": "failed", "error": "forgotten locally, but …"})
            ),
            "forgotten locally, but …\n"
        );
    }

    #[test]
    fn a_wildcard_listen_address_is_reached_on_loopback() {
        assert_eq!(
            AdminClient::base_for("0.0.0.0:9200".parse().unwrap()),
            "http://127.0.0.1:9200"
        );
        assert_eq!(
            AdminClient::base_for("127.0.0.1:9300".parse().unwrap()),
            "http://127.0.0.1:9300"
        );
    }
}
