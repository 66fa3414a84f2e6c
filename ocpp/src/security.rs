//! OCPP security profiles: does a connection meet a station's minimum?
//!
//! Pure decisions, no I/O. The inputs are what the handshake established: whether the socket
//! is TLS, the outcome of HTTP Basic authentication against the station's configured
//! password, and whether a client certificate was presented that chains to the configured
//! client CA (rustls checked that) and whose subject CN is the station id.
//!
//! | profile | transport | station authenticates with |
//! |---|---|---|
//! | 0 | ws or wss | nothing |
//! | 1 | ws (or better) | HTTP Basic, username = station id |
//! | 2 | wss only | HTTP Basic, username = station id |
//! | 3 | wss only | client certificate chaining to `client_ca`, CN = station id (Basic optional) |
//!
//! A station may always use more than its minimum. Rules, in order:
//! 1. Basic credentials that were sent and are wrong (other username, other password) are
//!    refused with 401, whatever else the connection has.
//! 2. A client certificate of *another* station (verified chain, CN ≠ station id) is refused
//!    with 403.
//! 3. The connection's profile is 3 with a matching client certificate, else 2 with TLS and
//!    valid Basic, else 1 with valid Basic, else 0.
//! 4. Below the minimum: 401 when the missing piece is the password (the station can fix it
//!    by sending it), else 403 (wrong transport, missing certificate).

use std::fmt;

/// An OCPP security profile (OCPP security whitepaper / 2.0.1 Part 2 A00.FR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecurityProfile {
    /// 0: no authentication (not part of the OCPP security profiles; trusted networks only).
    Unsecured = 0,
    /// 1: HTTP Basic over plain websocket.
    Basic = 1,
    /// 2: TLS (server certificate) plus HTTP Basic.
    TlsBasic = 2,
    /// 3: TLS with a client certificate.
    TlsClientCert = 3,
}

impl SecurityProfile {
    /// The profile with this number (0..=3).
    pub fn from_number(n: u8) -> Option<SecurityProfile> {
        match n {
            0 => Some(SecurityProfile::Unsecured),
            1 => Some(SecurityProfile::Basic),
            2 => Some(SecurityProfile::TlsBasic),
            3 => Some(SecurityProfile::TlsClientCert),
            _ => None,
        }
    }

    /// Its number.
    pub fn number(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for SecurityProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// The outcome of HTTP Basic authentication against the station's configured password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BasicAuth {
    /// The station has no password configured (whatever was sent is ignored).
    NotConfigured,
    /// Username = station id and the password matches.
    Valid,
    /// The station has a password but the request sent no Basic credentials.
    Missing,
    /// Credentials were sent but the username or the password is wrong.
    Wrong,
}

/// What the TLS layer established about a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCert {
    /// None presented (or a plain connection).
    None,
    /// Chains to `client_ca` and its subject CN is the station id.
    Matches,
    /// Chains to `client_ca` but its CN names someone else.
    OtherStation,
}

impl ClientCert {
    /// Compares the verified certificate's CN (if any) with the station id.
    pub fn of(verified_cn: Option<&str>, station: &str) -> ClientCert {
        match verified_cn {
            None => ClientCert::None,
            Some(cn) if cn == station => ClientCert::Matches,
            Some(_) => ClientCert::OtherStation,
        }
    }
}

/// How a refused connection is answered before the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// HTTP 401 with a Basic challenge.
    Unauthorized,
    /// HTTP 403.
    Forbidden,
}

/// The decision on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Upgrade; the profile the connection actually has (≥ the minimum).
    Accept(SecurityProfile),
    /// Refuse, with the reason for the log.
    Refuse(Refusal, &'static str),
}

/// The profile a connection has (rule 3 above), ignoring refusals.
pub fn achieved(tls: bool, basic: BasicAuth, cert: ClientCert) -> SecurityProfile {
    if tls && cert == ClientCert::Matches {
        SecurityProfile::TlsClientCert
    } else if basic == BasicAuth::Valid && tls {
        SecurityProfile::TlsBasic
    } else if basic == BasicAuth::Valid {
        SecurityProfile::Basic
    } else {
        SecurityProfile::Unsecured
    }
}

/// Whether a connection meets the station's `minimum` (see the module docs for the rules).
pub fn decide(minimum: SecurityProfile, tls: bool, basic: BasicAuth, cert: ClientCert) -> Decision {
    use SecurityProfile as P;
    if basic == BasicAuth::Wrong {
        return Decision::Refuse(Refusal::Unauthorized, "wrong username or password");
    }
    // A plain connection cannot carry a certificate; treat a confused caller as none.
    let cert = if tls { cert } else { ClientCert::None };
    if cert == ClientCert::OtherStation {
        return Decision::Refuse(
            Refusal::Forbidden,
            "client certificate CN is not the station id",
        );
    }
    let have = achieved(tls, basic, cert);
    if have >= minimum {
        return Decision::Accept(have);
    }
    let refuse = |reason| Decision::Refuse(Refusal::Forbidden, reason);
    match minimum {
        P::Unsecured => Decision::Accept(have),
        P::TlsClientCert if !tls => refuse("security profile 3 needs the TLS listener (wss://)"),
        P::TlsClientCert => refuse("security profile 3 needs a client certificate"),
        P::TlsBasic if !tls => refuse("security profile 2 needs the TLS listener (wss://)"),
        P::TlsBasic | P::Basic if basic == BasicAuth::Missing => {
            Decision::Refuse(Refusal::Unauthorized, "password missing")
        }
        // Profile 1/2 with no password configured (the configuration check prevents it).
        P::TlsBasic | P::Basic => refuse("no password configured for a profile that needs one"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BasicAuth::{Missing, NotConfigured, Valid, Wrong};
    use ClientCert::{Matches, None as NoCert, OtherStation};
    use Refusal::{Forbidden, Unauthorized};
    use SecurityProfile::{Basic, TlsBasic, TlsClientCert, Unsecured};

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Want {
        Ok(SecurityProfile),
        No(Refusal),
    }
    use Want::{No, Ok};

    fn check(min: SecurityProfile, tls: bool, basic: BasicAuth, cert: ClientCert, want: Want) {
        let got = match decide(min, tls, basic, cert) {
            Decision::Accept(p) => Ok(p),
            Decision::Refuse(r, _) => No(r),
        };
        assert_eq!(got, want, "min {min}, tls {tls}, {basic:?}, {cert:?}");
    }

    /// Every minimum × transport × Basic outcome × certificate outcome.
    #[test]
    fn every_row_of_the_profile_table() {
        // (tls, basic, cert) → expected for minimum 0, 1, 2, 3.
        let rows: &[(bool, BasicAuth, ClientCert, [Want; 4])] = &[
            // Plain websocket.
            (
                false,
                NotConfigured,
                NoCert,
                [Ok(Unsecured), No(Forbidden), No(Forbidden), No(Forbidden)],
            ),
            (
                false,
                Valid,
                NoCert,
                [Ok(Basic), Ok(Basic), No(Forbidden), No(Forbidden)],
            ),
            (
                false,
                Missing,
                NoCert,
                [
                    Ok(Unsecured),
                    No(Unauthorized),
                    No(Forbidden),
                    No(Forbidden),
                ],
            ),
            (false, Wrong, NoCert, [No(Unauthorized); 4]),
            // TLS without a client certificate.
            (
                true,
                NotConfigured,
                NoCert,
                [Ok(Unsecured), No(Forbidden), No(Forbidden), No(Forbidden)],
            ),
            (
                true,
                Valid,
                NoCert,
                [Ok(TlsBasic), Ok(TlsBasic), Ok(TlsBasic), No(Forbidden)],
            ),
            (
                true,
                Missing,
                NoCert,
                [
                    Ok(Unsecured),
                    No(Unauthorized),
                    No(Unauthorized),
                    No(Forbidden),
                ],
            ),
            (true, Wrong, NoCert, [No(Unauthorized); 4]),
            // TLS with this station's certificate: profile 3, Basic optional but never wrong.
            (true, NotConfigured, Matches, [Ok(TlsClientCert); 4]),
            (true, Valid, Matches, [Ok(TlsClientCert); 4]),
            (true, Missing, Matches, [Ok(TlsClientCert); 4]),
            (true, Wrong, Matches, [No(Unauthorized); 4]),
            // TLS with another station's certificate.
            (true, NotConfigured, OtherStation, [No(Forbidden); 4]),
            (true, Valid, OtherStation, [No(Forbidden); 4]),
            (true, Missing, OtherStation, [No(Forbidden); 4]),
            (true, Wrong, OtherStation, [No(Unauthorized); 4]),
        ];
        for &(tls, basic, cert, wants) in rows {
            for (min, want) in [Unsecured, Basic, TlsBasic, TlsClientCert]
                .into_iter()
                .zip(wants)
            {
                check(min, tls, basic, cert, want);
            }
        }
    }

    #[test]
    fn a_plain_connection_never_counts_a_certificate() {
        check(TlsClientCert, false, Valid, Matches, No(Forbidden));
        check(Basic, false, Valid, OtherStation, Ok(Basic));
    }

    #[test]
    fn refusals_name_the_reason() {
        let Decision::Refuse(_, reason) = decide(TlsBasic, false, Valid, NoCert) else {
            panic!()
        };
        assert!(reason.contains("TLS listener"), "{reason}");
        let Decision::Refuse(_, reason) = decide(TlsClientCert, true, Valid, NoCert) else {
            panic!()
        };
        assert!(reason.contains("client certificate"), "{reason}");
    }

    #[test]
    fn the_certificate_is_compared_with_the_station_id() {
        assert_eq!(ClientCert::of(Some("CS1"), "CS1"), Matches);
        assert_eq!(ClientCert::of(Some("cs1"), "CS1"), OtherStation);
        assert_eq!(ClientCert::of(None, "CS1"), NoCert);
    }

    #[test]
    fn profiles_round_trip_their_numbers() {
        for n in 0..4 {
            assert_eq!(SecurityProfile::from_number(n).unwrap().number(), n);
        }
        assert_eq!(SecurityProfile::from_number(4), None);
    }
}
