//! The OCPI response envelope and the error type every handler returns.
//!
//! HTTP vs OCPI layer (errata version of the status codes chapter): HTTP 400 only for a body that is not JSON, 401
//! for a missing/unknown token, 404 for GET of an unknown object, 405 for credentials misuse; every other outcome
//! of an authenticated, well-formed request is HTTP 200 with an OCPI `status_code`. Every response — errors
//! included — carries an envelope. See
//! <https://github.com/ocpi/ocpi/blob/release-2.2.1-bugfixes/transport_and_format.asciidoc#transport_and_format_response_format>
//! and <https://github.com/ocpi/ocpi/blob/release-2.2.1-bugfixes/status_codes.asciidoc>.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as AxumResponse};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::types::DateTime;

/// OCPI status code 1000: success.
pub const SUCCESS: u16 = 1000;

/// The OCPI response envelope.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response<T> {
    /// Payload; absent on most errors and on acks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<T>,
    /// Four-digit OCPI status code.
    pub status_code: u16,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// When the response was generated.
    pub timestamp: DateTime,
}

impl<T> Response<T> {
    /// A 1000 response carrying `data`.
    pub fn success(data: T) -> Self {
        Self {
            data: Some(data),
            status_code: SUCCESS,
            status_message: Some("Success".into()),
            timestamp: DateTime::now(),
        }
    }
}

impl Response<()> {
    /// A 1000 response without data.
    pub fn ack() -> Self {
        Self {
            data: None,
            status_code: SUCCESS,
            status_message: Some("Success".into()),
            timestamp: DateTime::now(),
        }
    }

    /// An error envelope.
    pub fn error(status_code: u16, message: impl Into<String>) -> Self {
        Self {
            data: None,
            status_code,
            status_message: Some(message.into()),
            timestamp: DateTime::now(),
        }
    }
}

impl<T: Serialize> IntoResponse for Response<T> {
    fn into_response(self) -> AxumResponse {
        (StatusCode::OK, Json(self)).into_response()
    }
}

/// Everything a handler can fail with, mapped to HTTP status + OCPI status code by [`OcpiError::http_status`] and
/// [`OcpiError::status_code`].
#[derive(Debug, thiserror::Error)]
pub enum OcpiError {
    /// 2000 generic client error (HTTP 200).
    #[error("client error: {0}")]
    Client(String),
    /// 2001 invalid or missing parameters (HTTP 200).
    #[error("invalid or missing parameters: {0}")]
    InvalidParameters(String),
    /// Body is not JSON: HTTP 400, OCPI 2001.
    #[error("request body is not valid JSON: {0}")]
    BodyNotJson(String),
    /// 2002 not enough information (HTTP 200).
    #[error("not enough information: {0}")]
    NotEnoughInformation(String),
    /// 2003 unknown location (HTTP 200), e.g. a command for a location we don't have.
    #[error("unknown location: {0}")]
    UnknownLocation(String),
    /// GET of a location that does not exist: HTTP 404, OCPI 2003.
    #[error("location not found: {0}")]
    LocationNotFound(String),
    /// GET of another object that does not exist: HTTP 404, OCPI 2000.
    #[error("not found: {0}")]
    NotFound(String),
    /// 2004 unknown token (HTTP 200).
    #[error("unknown token: {0}")]
    UnknownToken(String),
    /// Missing or unknown `Authorization` token: HTTP 401.
    #[error("missing or unknown authorization token")]
    Unauthorized,
    /// Credentials misuse (POST when registered, PUT/DELETE when not): HTTP 405.
    #[error("method not allowed: {0}")]
    MethodNotAllowed(String),
    /// 3000 generic server error (HTTP 200).
    #[error("server error: {0}")]
    Server(String),
    /// 3001 unable to use the client's API (HTTP 200).
    #[error("unable to use the client's API: {0}")]
    ClientApiUnusable(String),
    /// 3002 unsupported version (HTTP 200).
    #[error("unsupported version: {0}")]
    UnsupportedVersion(String),
    /// 3003 no matching endpoints (HTTP 200).
    #[error("no matching endpoints or expected endpoints missing: {0}")]
    NoMatchingEndpoints(String),
}

impl OcpiError {
    /// The OCPI status code in the envelope.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Client(_)
            | Self::NotFound(_)
            | Self::Unauthorized
            | Self::MethodNotAllowed(_) => 2000,
            Self::InvalidParameters(_) | Self::BodyNotJson(_) => 2001,
            Self::NotEnoughInformation(_) => 2002,
            Self::UnknownLocation(_) | Self::LocationNotFound(_) => 2003,
            Self::UnknownToken(_) => 2004,
            Self::Server(_) => 3000,
            Self::ClientApiUnusable(_) => 3001,
            Self::UnsupportedVersion(_) => 3002,
            Self::NoMatchingEndpoints(_) => 3003,
        }
    }

    /// The HTTP status of the response.
    pub fn http_status(&self) -> StatusCode {
        match self {
            Self::BodyNotJson(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::LocationNotFound(_) | Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::OK,
        }
    }
}

impl IntoResponse for OcpiError {
    fn into_response(self) -> AxumResponse {
        if matches!(self.status_code(), 3000..=3999) {
            tracing::warn!(error = %self, "OCPI request failed on our side");
        } else {
            tracing::debug!(error = %self, "OCPI request refused");
        }
        let body = Response::error(self.status_code(), self.to_string());
        (self.http_status(), Json(body)).into_response()
    }
}

/// JSON body extractor with OCPI error mapping: not JSON → HTTP 400 (OCPI 2001); valid JSON of the wrong shape →
/// HTTP 200 + OCPI 2001. The `Content-Type` header is not required (peers get it wrong).
#[derive(Debug, Clone)]
pub struct OcpiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for OcpiJson<T> {
    type Rejection = OcpiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| OcpiError::BodyNotJson(format!("unreadable body: {e}")))?;
        parse_body(&bytes).map(OcpiJson)
    }
}

/// Parses a request body with the [`OcpiJson`] error mapping.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, OcpiError> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => OcpiError::InvalidParameters(e.to_string()),
        _ => OcpiError::BodyNotJson(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_mapping_matches_the_status_code_chapter() {
        let cases = [
            (OcpiError::InvalidParameters("x".into()), 200, 2001),
            (OcpiError::BodyNotJson("x".into()), 400, 2001),
            (OcpiError::UnknownLocation("x".into()), 200, 2003),
            (OcpiError::LocationNotFound("x".into()), 404, 2003),
            (OcpiError::NotFound("x".into()), 404, 2000),
            (OcpiError::Unauthorized, 401, 2000),
            (OcpiError::MethodNotAllowed("x".into()), 405, 2000),
            (OcpiError::ClientApiUnusable("x".into()), 200, 3001),
            (OcpiError::UnsupportedVersion("x".into()), 200, 3002),
            (OcpiError::NoMatchingEndpoints("x".into()), 200, 3003),
        ];
        for (err, http, code) in cases {
            assert_eq!(err.http_status().as_u16(), http, "{err}");
            assert_eq!(err.status_code(), code, "{err}");
        }
    }

    #[test]
    fn body_parsing_distinguishes_syntax_from_shape() {
        #[derive(Debug, Deserialize)]
        struct Body {
            #[allow(dead_code)]
            token: String,
        }
        assert!(matches!(
            parse_body::<Body>(b"{not json"),
            Err(OcpiError::BodyNotJson(_))
        ));
        assert!(matches!(
            parse_body::<Body>(b""),
            Err(OcpiError::BodyNotJson(_))
        ));
        assert!(matches!(
            parse_body::<Body>(br#"{"token": 5}"#),
            Err(OcpiError::InvalidParameters(_))
        ));
        assert!(parse_body::<Body>(br#"{"token": "a"}"#).is_ok());
    }

    #[test]
    fn envelope_omits_absent_data_and_round_trips() {
        let json = serde_json::to_value(Response::error(2001, "bad")).expect("json");
        assert!(json.get("data").is_none());
        assert_eq!(json["status_code"], 2001);
        let ok: Response<Vec<u32>> = serde_json::from_str(
            r#"{"data":[1,2],"status_code":1000,"timestamp":"2020-01-01T00:00:00"}"#,
        )
        .expect("parses");
        assert_eq!(ok.data, Some(vec![1, 2]));
        assert_eq!(ok.status_message, None);
    }
}
