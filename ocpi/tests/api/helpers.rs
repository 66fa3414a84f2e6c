//! Test backend, fixtures and a real-socket server on 127.0.0.1:0.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Request, Response};
use chrono::TimeZone as _;
use http_body_util::BodyExt as _;
use ocpi::types::*;
use ocpi::{CpoBackend, OcpiError, Peer, PeerId, PeerStore, Peers, Platform, Settings};
use tower::ServiceExt as _;

pub(crate) const TOKEN_A: &str = "token-a-for-tests";

pub(crate) fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[derive(Default)]
pub(crate) struct Recorded {
    pub(crate) saved: Vec<PeerId>,
    pub(crate) deleted: Vec<PeerId>,
    pub(crate) registered: Vec<PeerId>,
    pub(crate) unregistered: Vec<PeerId>,
}

pub(crate) struct TestBackend {
    pub(crate) settings: Settings,
    pub(crate) locations: Mutex<Vec<Location>>,
    pub(crate) tariffs: Mutex<Vec<Tariff>>,
    pub(crate) sessions: Mutex<Vec<Session>>,
    pub(crate) cdrs: Mutex<Vec<Cdr>>,
    pub(crate) tokens: Mutex<Vec<Token>>,
    pub(crate) commands: Mutex<Vec<Command>>,
    pub(crate) initial_peers: Vec<Peer>,
    pub(crate) recorded: Mutex<Recorded>,
}

impl TestBackend {
    pub(crate) fn new(settings: Settings) -> Self {
        Self {
            settings,
            locations: Mutex::new(Vec::new()),
            tariffs: Mutex::new(Vec::new()),
            sessions: Mutex::new(Vec::new()),
            cdrs: Mutex::new(Vec::new()),
            tokens: Mutex::new(Vec::new()),
            commands: Mutex::new(Vec::new()),
            initial_peers: Vec::new(),
            recorded: Mutex::default(),
        }
    }

    pub(crate) fn recorded<R>(&self, f: impl FnOnce(&Recorded) -> R) -> R {
        f(&self.recorded.lock().expect("lock"))
    }
}

impl CpoBackend for TestBackend {
    fn settings(&self) -> &Settings {
        &self.settings
    }
    fn locations(&self, _caller: &Peer) -> Result<Vec<Location>, OcpiError> {
        Ok(self.locations.lock().expect("lock").clone())
    }
    fn tariffs(&self, _caller: &Peer) -> Result<Vec<Tariff>, OcpiError> {
        Ok(self.tariffs.lock().expect("lock").clone())
    }
    fn sessions(&self, _caller: &Peer) -> Result<Vec<Session>, OcpiError> {
        Ok(self.sessions.lock().expect("lock").clone())
    }
    fn cdrs(&self, _caller: &Peer) -> Result<Vec<Cdr>, OcpiError> {
        Ok(self.cdrs.lock().expect("lock").clone())
    }
    fn token(
        &self,
        _caller: &Peer,
        country_code: &CountryCode,
        party_id: &PartyId,
        uid: &TokenUid,
        kind: &TokenType,
    ) -> Result<Option<Token>, OcpiError> {
        Ok(self
            .tokens
            .lock()
            .expect("lock")
            .iter()
            .find(|t| {
                &t.country_code == country_code
                    && &t.party_id == party_id
                    && &t.uid == uid
                    && &t.kind == kind
            })
            .cloned())
    }
    fn put_token(&self, _caller: &Peer, token: Token) -> Result<(), OcpiError> {
        let mut tokens = self.tokens.lock().expect("lock");
        tokens.retain(|t| {
            !(t.country_code == token.country_code
                && t.party_id == token.party_id
                && t.uid == token.uid
                && t.kind == token.kind)
        });
        tokens.push(token);
        Ok(())
    }
    async fn command(
        &self,
        _caller: &Peer,
        command: Command,
    ) -> Result<CommandResponse, OcpiError> {
        let accepted = matches!(command, Command::StartSession(_) | Command::StopSession(_));
        self.commands.lock().expect("lock").push(command);
        Ok(if accepted {
            CommandResponse::new(CommandResponseType::Accepted, 60)
        } else {
            CommandResponse::new(CommandResponseType::Rejected, 0).with_message("test backend")
        })
    }
    async fn peer_registered(&self, peer: &Peer) {
        self.recorded
            .lock()
            .expect("lock")
            .registered
            .push(peer.id.clone());
    }
    async fn peer_unregistered(&self, id: &PeerId) {
        self.recorded
            .lock()
            .expect("lock")
            .unregistered
            .push(id.clone());
    }
}

impl PeerStore for TestBackend {
    fn load_peers(&self) -> Result<Vec<Peer>, OcpiError> {
        Ok(self.initial_peers.clone())
    }
    fn save_peer(&self, peer: &Peer) -> Result<(), OcpiError> {
        self.recorded
            .lock()
            .expect("lock")
            .saved
            .push(peer.id.clone());
        Ok(())
    }
    fn delete_peer(&self, id: &PeerId) -> Result<(), OcpiError> {
        self.recorded.lock().expect("lock").deleted.push(id.clone());
        Ok(())
    }
}

pub(crate) fn ts(secs: i64) -> DateTime {
    DateTime::from(
        chrono::Utc
            .timestamp_opt(1_600_000_000 + secs, 0)
            .single()
            .expect("valid"),
    )
}

pub(crate) fn connector(id: &str) -> Connector {
    Connector {
        id: ConnectorId::new(id),
        standard: ConnectorType::Iec62196T2,
        format: ConnectorFormat::Socket,
        power_type: PowerType::Ac3Phase,
        max_voltage: 230,
        max_amperage: 32,
        max_electric_power: Some(22_000),
        tariff_ids: Some(vec![TariffId::new("T1")]),
        terms_and_conditions: None,
        capabilities: None,
        last_updated: ts(0),
    }
}

pub(crate) fn location(id: &str, last_updated: DateTime) -> Location {
    Location {
        country_code: "NL".into(),
        party_id: "CPO".into(),
        id: LocationId::new(id),
        publish: true,
        publish_allowed_to: None,
        name: Some(format!("Location {id}")),
        address: "Main Street 1".into(),
        city: "Utrecht".into(),
        postal_code: Some("3511AA".into()),
        state: None,
        country: "NLD".into(),
        coordinates: GeoLocation {
            latitude: "52.09073".into(),
            longitude: "5.12142".into(),
        },
        related_locations: None,
        parking_type: Some(ParkingType::OnStreet),
        evses: Some(vec![Evse {
            uid: EvseUid::new(format!("{id}-E1")),
            evse_id: Some(EvseId::new("NL*CPO*E1")),
            status: EvseStatus::Available,
            status_schedule: None,
            capabilities: Some(vec![Capability::RemoteStartStopCapable]),
            connectors: vec![connector("1"), connector("2")],
            floor_level: None,
            coordinates: None,
            physical_reference: Some("1".into()),
            directions: None,
            parking_restrictions: None,
            images: None,
            parking: None,
            accepted_service_providers: None,
            last_updated,
        }]),
        directions: None,
        operator: None,
        suboperator: None,
        owner: None,
        facilities: None,
        time_zone: "Europe/Amsterdam".into(),
        opening_times: None,
        charging_when_closed: None,
        images: None,
        energy_mix: None,
        parking_places: None,
        help_phone: None,
        last_updated,
    }
}

pub(crate) fn tariff(id: &str, last_updated: DateTime) -> Tariff {
    serde_json::from_value(serde_json::json!({
        "country_code": "NL", "party_id": "CPO", "id": id, "currency": "EUR",
        "elements": [{"price_components": [{"type": "ENERGY", "price": 0.3500, "vat": 21.0, "step_size": 1}]}],
        "last_updated": last_updated,
    }))
    .expect("tariff")
}

pub(crate) fn settings(public_url: &str, cc: &str, pid: &str) -> Settings {
    let mut s = Settings::new(public_url, cc, pid, &format!("{cc}{pid} Operator"));
    s.token_a = Some(AuthToken::new(TOKEN_A));
    s
}

pub(crate) fn peer(id: &str, token_in: &str, cc: &str, pid: &str) -> Peer {
    Peer {
        id: PeerId(id.into()),
        token_in: AuthToken::new(token_in),
        token_out: AuthToken::new(format!("out-{token_in}")),
        versions_url: "http://127.0.0.1:9/ocpi/versions".into(),
        version: "2.2.1".into(),
        endpoints: vec![],
        roles: vec![CredentialsRole {
            role: Role::Emsp,
            business_details: BusinessDetails {
                name: "eMSP".into(),
                website: None,
                logo: None,
            },
            party_id: pid.into(),
            country_code: cc.into(),
        }],
        registered_at: ts(0),
        encode_token: true,
        initiated_by: ocpi::Initiator::Them,
        status: ocpi::PeerStatus::Registered,
        options: Default::default(),
    }
}

/// In-process app (no socket) with one registered peer `EMSP` (token `peer-token`).
pub(crate) fn app_with_peer(
    locations: Vec<Location>,
) -> (axum::Router, Arc<Platform<TestBackend>>) {
    init_tls();
    let mut backend = TestBackend::new(settings("https://cpo.example.com/", "NL", "CPO"));
    backend.initial_peers = vec![peer("DEEMS", "peer-token", "DE", "EMS")];
    *backend.locations.lock().expect("lock") = locations;
    let platform = platform(backend);
    (platform.router(), platform)
}

pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: axum::http::HeaderMap,
    pub(crate) json: serde_json::Value,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub(crate) fn code(&self) -> i64 {
        self.json["status_code"].as_i64().unwrap_or(-1)
    }
}

pub(crate) async fn call(app: &axum::Router, req: Request<Body>) -> Answer {
    let response: Response<Body> = app.clone().oneshot(req).await.expect("infallible");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Answer {
        status,
        headers,
        json,
    }
}

pub(crate) fn get(uri: &str, auth: Option<&str>) -> Request<Body> {
    let mut b = Request::get(uri);
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(Body::empty()).expect("request")
}

pub(crate) fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A platform served on a real socket.
pub(crate) struct Served {
    pub(crate) url: String,
    pub(crate) platform: Arc<Platform<TestBackend>>,
}

impl Served {
    pub(crate) fn versions_url(&self) -> String {
        format!("{}/ocpi/versions", self.url)
    }
    pub(crate) fn backend(&self) -> &TestBackend {
        self.platform.backend()
    }
}

pub(crate) async fn serve(cc: &str, pid: &str, configure: impl FnOnce(&mut TestBackend)) -> Served {
    init_tls();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let mut backend = TestBackend::new(settings(&url, cc, pid));
    configure(&mut backend);
    let platform = platform(backend);
    let router = platform.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Served { url, platform }
}

/// A URL on which nothing listens.
pub(crate) async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

pub(crate) fn token_json(uid: &str, kind: &str) -> serde_json::Value {
    serde_json::json!({
        "country_code": "DE", "party_id": "EMS", "uid": uid, "type": kind,
        "contract_id": "DE-EMS-C12345-6", "issuer": "Example eMSP", "valid": true,
        "whitelist": "ALLOWED", "last_updated": "2020-01-01T00:00:00Z"
    })
}

pub(crate) fn token(uid: &str, kind: &str) -> Token {
    serde_json::from_value(token_json(uid, kind)).expect("token")
}

pub(crate) fn session(id: &str, last_updated: DateTime) -> Session {
    serde_json::from_value(serde_json::json!({
        "country_code": "NL", "party_id": "CPO", "id": id, "start_date_time": "2020-01-01T10:00:00Z",
        "kwh": 12.5, "cdr_token": {"country_code": "DE", "party_id": "EMS", "uid": "RFID1", "type": "RFID",
        "contract_id": "DE-EMS-C12345-6"}, "auth_method": "WHITELIST", "location_id": "Loc-1",
        "evse_uid": "Loc-1-E1", "connector_id": "1", "currency": "EUR", "status": "ACTIVE",
        "total_cost": {"excl_vat": 3.50, "incl_vat": 4.24}, "last_updated": last_updated
    }))
    .expect("session")
}

pub(crate) fn cdr(id: &str, last_updated: DateTime) -> Cdr {
    serde_json::from_value(serde_json::json!({
        "country_code": "NL", "party_id": "CPO", "id": id, "start_date_time": "2020-01-01T10:00:00Z",
        "end_date_time": "2020-01-01T11:30:00Z", "session_id": "S1",
        "cdr_token": {"country_code": "DE", "party_id": "EMS", "uid": "RFID1", "type": "RFID",
          "contract_id": "DE-EMS-C12345-6"},
        "auth_method": "WHITELIST",
        "cdr_location": {"id": "Loc-1", "address": "Main Street 1", "city": "Utrecht", "country": "NLD",
          "coordinates": {"latitude": "52.09073", "longitude": "5.12142"}, "evse_uid": "Loc-1-E1",
          "evse_id": "NL*CPO*E1", "connector_id": "1", "connector_standard": "IEC_62196_T2",
          "connector_format": "SOCKET", "connector_power_type": "AC_3_PHASE"},
        "currency": "EUR",
        "charging_periods": [{"start_date_time": "2020-01-01T10:00:00Z",
          "dimensions": [{"type": "ENERGY", "volume": 12.500}], "tariff_id": "T1"}],
        "total_cost": {"excl_vat": 4.38, "incl_vat": 5.30}, "total_energy": 12.500, "total_time": 1.5,
        "last_updated": last_updated
    }))
    .expect("cdr")
}

/// A request with the peer's token and an optional JSON body.
pub(crate) fn send(method: &str, uri: &str, body: Option<&serde_json::Value>) -> Request<Body> {
    let b = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", "Token peer-token");
    match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(v).expect("json")))
            .expect("request"),
        None => b.body(Body::empty()).expect("request"),
    }
}

/// The platform over a test backend (which is its own peer store).
pub(crate) fn platform(backend: TestBackend) -> Arc<Platform<TestBackend>> {
    let backend = Arc::new(backend);
    let peers = Peers::load(backend.clone()).expect("peers");
    Platform::new(backend, peers).expect("platform")
}
