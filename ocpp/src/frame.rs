//! The OCPP-J frame codec: `[2,id,action,payload]`, `[3,id,payload]`,
//! `[4,id,code,description,details]`.
//!
//! This module owns the wire shape of a message and nothing above it: payloads stay
//! [`serde_json::Value`]s, error codes stay text. Invariants:
//! - A frame is parsed as a JSON array of [`Value`]s and dispatched on element 0; no
//!   `untagged`/`flatten` serde (the build has serde_json `arbitrary_precision` on, which breaks
//!   them around numbers).
//! - A message id is a non-empty string of at most [`MAX_MESSAGE_ID_LEN`] characters; a frame
//!   whose id can't be read that way is reported with [`UNKNOWN_MESSAGE_ID`] (`"-1"`).
//! - A CALL payload is a JSON object (else [`FrameError::PayloadNotObject`]).
//! - A CALLERROR description is at most [`MAX_DESCRIPTION_LEN`] characters on the wire
//!   ([`Frame::to_text`] truncates on a character boundary).
//! - An unknown MessageTypeId is its own error ([`FrameError::UnknownMessageType`]): 2.0.1 answers
//!   it with `MessageTypeNotSupported`, 1.6 ignores it (OCPP-J 1.6 §4.1.3).

use serde_json::Value;

use crate::error::ErrorCode;

/// MessageTypeId of a CALL.
pub const CALL: u64 = 2;
/// MessageTypeId of a CALLRESULT.
pub const CALL_RESULT: u64 = 3;
/// MessageTypeId of a CALLERROR.
pub const CALL_ERROR: u64 = 4;
/// Longest message id allowed (OCPP-J 1.6 §4.1.4, 2.0.1 Part 4 §4.2.1).
pub const MAX_MESSAGE_ID_LEN: usize = 36;
/// Longest CALLERROR description sent (2.0.1 Part 4 §4.2.3), in characters.
pub const MAX_DESCRIPTION_LEN: usize = 255;
/// Message id of a CALLERROR answering a frame whose id could not be read.
pub const UNKNOWN_MESSAGE_ID: &str = "-1";

/// One OCPP-J message.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `[2, id, action, payload]`: a request.
    Call {
        /// Message id, chosen by the sender.
        id: String,
        /// Action name (e.g. `BootNotification`).
        action: String,
        /// Request payload (a JSON object).
        payload: Value,
    },
    /// `[3, id, payload]`: the answer to a CALL.
    CallResult {
        /// The id of the CALL answered.
        id: String,
        /// Response payload.
        payload: Value,
    },
    /// `[4, id, code, description, details]`: a CALL could not be answered.
    CallError {
        /// The id of the CALL answered (`"-1"` if it could not be read).
        id: String,
        /// Error code, spelled for the connection's version.
        code: String,
        /// Human-readable description (≤ 255 characters on the wire).
        description: String,
        /// Error details (a JSON object, usually `{}`).
        details: Value,
    },
}

/// Why a text message is not a valid OCPP-J frame.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrameError {
    /// Not JSON, not an array, too short or too long, or an element of the wrong type.
    #[error("malformed frame: {reason}")]
    Malformed {
        /// The message id, when it could be read.
        id: Option<String>,
        /// The MessageTypeId, when it could be read (lets a reader tell a broken CALLRESULT
        /// from a broken CALL).
        message_type: Option<u64>,
        /// What is wrong.
        reason: String,
    },
    /// Element 0 is a number but not 2, 3 or 4.
    #[error("unknown MessageTypeId {message_type}")]
    UnknownMessageType {
        /// The message id, when it could be read.
        id: Option<String>,
        /// The MessageTypeId as sent.
        message_type: String,
    },
    /// A CALL whose payload is not a JSON object.
    #[error("payload of CALL {action} is not a JSON object")]
    PayloadNotObject {
        /// The CALL's message id.
        id: String,
        /// The CALL's action.
        action: String,
    },
}

impl FrameError {
    /// The id to answer with: the message id if it could be read, else `"-1"`.
    pub fn reply_id(&self) -> &str {
        match self {
            FrameError::Malformed { id, .. } | FrameError::UnknownMessageType { id, .. } => {
                id.as_deref().unwrap_or(UNKNOWN_MESSAGE_ID)
            }
            FrameError::PayloadNotObject { id, .. } => id,
        }
    }

    /// The error code a CALLERROR answering this frame carries (spell it with
    /// [`ErrorCode::as_str`]; 1.6 spells the framework codes `ProtocolError`).
    pub fn error_code(&self) -> ErrorCode {
        match self {
            FrameError::Malformed { .. } => ErrorCode::RpcFrameworkError,
            FrameError::UnknownMessageType { .. } => ErrorCode::MessageTypeNotSupported,
            FrameError::PayloadNotObject { .. } => ErrorCode::FormatViolation,
        }
    }

    /// True when the broken frame was readable as a CALLRESULT or CALLERROR (it answers one of
    /// our CALLs, so it must not itself be answered).
    pub fn is_response(&self) -> bool {
        matches!(
            self,
            FrameError::Malformed {
                message_type: Some(CALL_RESULT | CALL_ERROR),
                ..
            }
        )
    }
}

/// Reads a valid message id (non-empty string, ≤ 36 characters).
fn message_id(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= MAX_MESSAGE_ID_LEN => {
            Some(s.clone())
        }
        _ => None,
    }
}

/// Cuts `s` to at most `max` characters, on a character boundary.
pub fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

impl Frame {
    /// A CALLERROR with an empty details object; the description is truncated to 255 characters.
    pub fn call_error(id: impl Into<String>, code: &str, description: &str) -> Frame {
        Frame::CallError {
            id: id.into(),
            code: code.to_owned(),
            description: truncate_chars(description, MAX_DESCRIPTION_LEN).to_owned(),
            details: Value::Object(serde_json::Map::new()),
        }
    }

    /// The frame's message id.
    pub fn id(&self) -> &str {
        match self {
            Frame::Call { id, .. } | Frame::CallResult { id, .. } | Frame::CallError { id, .. } => {
                id
            }
        }
    }

    /// Parses one websocket text message.
    pub fn parse(text: &str) -> Result<Frame, FrameError> {
        let malformed =
            |id: Option<String>, message_type: Option<u64>, reason: &str| FrameError::Malformed {
                id,
                message_type,
                reason: reason.to_owned(),
            };
        let items: Vec<Value> = match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(items)) => items,
            Ok(_) => return Err(malformed(None, None, "not a JSON array")),
            Err(_) => return Err(malformed(None, None, "not valid JSON")),
        };
        let id = message_id(items.get(1));
        let message_type = match items.first() {
            Some(Value::Number(n)) => match n.as_u64() {
                Some(t @ (CALL | CALL_RESULT | CALL_ERROR)) => t,
                _ => {
                    return Err(FrameError::UnknownMessageType {
                        id,
                        message_type: n.to_string(),
                    });
                }
            },
            Some(_) => return Err(malformed(id, None, "MessageTypeId is not a number")),
            None => return Err(malformed(None, None, "empty array")),
        };
        let Some(id) = id else {
            let reason = match items.get(1) {
                None => "message id missing",
                Some(Value::String(s)) if s.is_empty() => "message id is empty",
                Some(Value::String(_)) => "message id longer than 36 characters",
                Some(_) => "message id is not a string",
            };
            return Err(malformed(None, Some(message_type), reason));
        };
        let expected = match message_type {
            CALL => 4,
            CALL_RESULT => 3,
            _ => 5,
        };
        if items.len() != expected {
            let reason = format!("expected {expected} elements, got {}", items.len());
            return Err(malformed(Some(id), Some(message_type), &reason));
        }
        let mut items = items.into_iter().skip(2);
        let mut next = || items.next().unwrap_or(Value::Null);
        match message_type {
            CALL => {
                let Value::String(action) = next() else {
                    return Err(malformed(Some(id), Some(CALL), "action is not a string"));
                };
                let payload = next();
                if !payload.is_object() {
                    return Err(FrameError::PayloadNotObject { id, action });
                }
                Ok(Frame::Call {
                    id,
                    action,
                    payload,
                })
            }
            CALL_RESULT => Ok(Frame::CallResult {
                id,
                payload: next(),
            }),
            _ => {
                let Value::String(code) = next() else {
                    return Err(malformed(
                        Some(id),
                        Some(CALL_ERROR),
                        "error code is not a string",
                    ));
                };
                let Value::String(description) = next() else {
                    return Err(malformed(
                        Some(id),
                        Some(CALL_ERROR),
                        "error description is not a string",
                    ));
                };
                Ok(Frame::CallError {
                    id,
                    code,
                    description,
                    details: next(),
                })
            }
        }
    }

    /// The frame as a websocket text message. A CALLERROR description is cut to 255 characters.
    pub fn to_text(&self) -> String {
        let array = match self {
            Frame::Call {
                id,
                action,
                payload,
            } => {
                vec![
                    Value::from(CALL),
                    id.as_str().into(),
                    action.as_str().into(),
                    payload.clone(),
                ]
            }
            Frame::CallResult { id, payload } => {
                vec![
                    Value::from(CALL_RESULT),
                    id.as_str().into(),
                    payload.clone(),
                ]
            }
            Frame::CallError {
                id,
                code,
                description,
                details,
            } => vec![
                Value::from(CALL_ERROR),
                id.as_str().into(),
                code.as_str().into(),
                truncate_chars(description, MAX_DESCRIPTION_LEN).into(),
                details.clone(),
            ],
        };
        Value::Array(array).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OcppVersion;
    use proptest::prelude::*;
    use serde_json::json;

    fn malformed(text: &str) -> (Option<String>, Option<u64>) {
        match Frame::parse(text) {
            Err(FrameError::Malformed {
                id, message_type, ..
            }) => (id, message_type),
            other => panic!("expected Malformed for {text}, got {other:?}"),
        }
    }

    #[test]
    fn a_call_parses() {
        let f = Frame::parse(r#"[2,"19223201","BootNotification",{"a":1.50}]"#).unwrap();
        let Frame::Call {
            id,
            action,
            payload,
        } = f
        else {
            panic!("not a call")
        };
        assert_eq!(id, "19223201");
        assert_eq!(action, "BootNotification");
        assert_eq!(payload["a"].to_string(), "1.50", "numbers keep their text");
    }

    #[test]
    fn a_call_result_and_a_call_error_parse() {
        assert_eq!(
            Frame::parse(r#"[3,"x",{"status":"Accepted"}]"#).unwrap(),
            Frame::CallResult {
                id: "x".into(),
                payload: json!({"status":"Accepted"})
            }
        );
        assert_eq!(
            Frame::parse(r#"[4,"x","NotImplemented","nope",{}]"#).unwrap(),
            Frame::call_error("x", "NotImplemented", "nope")
        );
    }

    #[test]
    fn text_that_is_not_json_has_no_id() {
        assert_eq!(malformed("hello"), (None, None));
        assert_eq!(malformed(r#"[2,"abc","Heartbeat",{}"#), (None, None));
    }

    #[test]
    fn json_that_is_not_an_array_has_no_id() {
        assert_eq!(malformed(r#"{"id":"abc"}"#), (None, None));
        assert_eq!(malformed("[]"), (None, None));
    }

    #[test]
    fn a_short_frame_keeps_its_id() {
        assert_eq!(
            malformed(r#"[2,"abc","Heartbeat"]"#),
            (Some("abc".into()), Some(2))
        );
        assert_eq!(malformed(r#"[3,"abc"]"#), (Some("abc".into()), Some(3)));
        assert_eq!(
            malformed(r#"[4,"abc","GenericError","x"]"#),
            (Some("abc".into()), Some(4))
        );
        assert_eq!(malformed("[2]"), (None, Some(2)));
    }

    #[test]
    fn a_long_frame_is_malformed() {
        assert_eq!(
            malformed(r#"[3,"abc",{},{}]"#),
            (Some("abc".into()), Some(3))
        );
    }

    #[test]
    fn elements_of_the_wrong_type_are_malformed() {
        assert_eq!(
            malformed(r#"["2","abc","Heartbeat",{}]"#),
            (Some("abc".into()), None)
        );
        assert_eq!(malformed(r#"[2,17,"Heartbeat",{}]"#), (None, Some(2)));
        assert_eq!(
            malformed(r#"[2,"abc",17,{}]"#),
            (Some("abc".into()), Some(2))
        );
        assert_eq!(
            malformed(r#"[4,"abc",1,"x",{}]"#),
            (Some("abc".into()), Some(4))
        );
        assert_eq!(
            malformed(r#"[4,"abc","x",null,{}]"#),
            (Some("abc".into()), Some(4))
        );
    }

    #[test]
    fn an_overlong_or_empty_message_id_is_unreadable() {
        let long = "a".repeat(37);
        let err = Frame::parse(&format!(r#"[2,"{long}","Heartbeat",{{}}]"#)).unwrap_err();
        assert_eq!(err.reply_id(), "-1");
        assert_eq!(malformed(r#"[2,"","Heartbeat",{}]"#), (None, Some(2)));
        let max = "é".repeat(36);
        assert!(Frame::parse(&format!(r#"[2,"{max}","Heartbeat",{{}}]"#)).is_ok());
    }

    #[test]
    fn an_unknown_message_type_is_its_own_error() {
        let err = Frame::parse(r#"[5,"abc","Foo",{}]"#).unwrap_err();
        assert_eq!(
            err,
            FrameError::UnknownMessageType {
                id: Some("abc".into()),
                message_type: "5".into()
            }
        );
        assert_eq!(err.error_code(), ErrorCode::MessageTypeNotSupported);
        assert_eq!(
            err.error_code().as_str(OcppVersion::V201),
            "MessageTypeNotSupported"
        );
        assert_eq!(Frame::parse(r#"[2.5,7]"#).unwrap_err().reply_id(), "-1");
    }

    #[test]
    fn a_call_payload_must_be_an_object() {
        for payload in ["[]", "null", "\"x\"", "1"] {
            let err = Frame::parse(&format!(r#"[2,"abc","Heartbeat",{payload}]"#)).unwrap_err();
            assert_eq!(
                err,
                FrameError::PayloadNotObject {
                    id: "abc".into(),
                    action: "Heartbeat".into()
                }
            );
            assert_eq!(
                err.error_code().as_str(OcppVersion::V16),
                "FormationViolation"
            );
            assert_eq!(err.reply_id(), "abc");
        }
    }

    #[test]
    fn broken_responses_are_recognised_as_responses() {
        assert!(Frame::parse(r#"[3,"abc"]"#).unwrap_err().is_response());
        assert!(!Frame::parse(r#"[2,"abc"]"#).unwrap_err().is_response());
        assert!(!Frame::parse("nope").unwrap_err().is_response());
    }

    #[test]
    fn framework_errors_are_spelled_per_version() {
        let err = Frame::parse("nope").unwrap_err();
        assert_eq!(err.error_code().as_str(OcppVersion::V16), "ProtocolError");
        assert_eq!(
            err.error_code().as_str(OcppVersion::V201),
            "RpcFrameworkError"
        );
    }

    #[test]
    fn descriptions_are_cut_to_255_characters_on_a_char_boundary() {
        let long = "ü".repeat(300);
        let text = Frame::call_error("a", "GenericError", &long).to_text();
        let Frame::CallError { description, .. } = Frame::parse(&text).unwrap() else {
            panic!("not a call error")
        };
        assert_eq!(description.chars().count(), 255);
        // to_text also cuts a description built by hand.
        let f = Frame::CallError {
            id: "a".into(),
            code: "GenericError".into(),
            description: long,
            details: json!({}),
        };
        let Frame::CallError { description, .. } = Frame::parse(&f.to_text()).unwrap() else {
            panic!("not a call error")
        };
        assert_eq!(description.chars().count(), 255);
    }

    #[test]
    fn to_text_writes_the_ocpp_j_shape() {
        let f = Frame::Call {
            id: "1".into(),
            action: "Reset".into(),
            payload: json!({}),
        };
        assert_eq!(f.to_text(), r#"[2,"1","Reset",{}]"#);
        assert_eq!(
            Frame::call_error("-1", "ProtocolError", "x").to_text(),
            r#"[4,"-1","ProtocolError","x",{}]"#
        );
    }

    fn json_leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".{0,20}".prop_map(Value::from),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        json_leaf().prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(".{0,8}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn json_object() -> impl Strategy<Value = Value> {
        prop::collection::btree_map("[a-zA-Z]{1,8}", json_value(), 0..6)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    fn frame() -> impl Strategy<Value = Frame> {
        let id = ".{1,36}";
        prop_oneof![
            (id, "[A-Za-z]{1,30}", json_object()).prop_map(|(id, action, payload)| Frame::Call {
                id,
                action,
                payload
            }),
            (id, json_value()).prop_map(|(id, payload)| Frame::CallResult { id, payload }),
            (id, "[A-Za-z]{1,30}", ".{0,255}", json_object()).prop_map(
                |(id, code, description, details)| Frame::CallError {
                    id,
                    code,
                    description,
                    details
                }
            ),
        ]
    }

    /// Compares two JSON values by meaning: numbers as numbers (integers exactly, others as
    /// f64), not by their text.
    fn same_json(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
                (Some(x), Some(y)) => x == y,
                _ => match (x.as_u64(), y.as_u64()) {
                    (Some(x), Some(y)) => x == y,
                    _ => x.as_f64() == y.as_f64(),
                },
            },
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
            }
            _ => a == b,
        }
    }

    fn same_frame(a: &Frame, b: &Frame) -> bool {
        match (a, b) {
            (
                Frame::Call {
                    id,
                    action,
                    payload,
                },
                Frame::Call {
                    id: id2,
                    action: action2,
                    payload: payload2,
                },
            ) => id == id2 && action == action2 && same_json(payload, payload2),
            (
                Frame::CallResult { id, payload },
                Frame::CallResult {
                    id: id2,
                    payload: p2,
                },
            ) => id == id2 && same_json(payload, p2),
            (
                Frame::CallError {
                    id,
                    code,
                    description,
                    details,
                },
                Frame::CallError {
                    id: id2,
                    code: c2,
                    description: d2,
                    details: det2,
                },
            ) => id == id2 && code == c2 && description == d2 && same_json(details, det2),
            _ => false,
        }
    }

    proptest! {
        #[test]
        fn parse_inverts_to_text(f in frame()) {
            let text = f.to_text();
            let back = Frame::parse(&text).expect("own output parses");
            prop_assert!(same_frame(&f, &back), "{f:?} != {back:?}");
        }

        #[test]
        fn parse_never_panics(text in ".{0,64}") {
            let _ = Frame::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_arrays(items in prop::collection::vec(json_value(), 0..7)) {
            let _ = Frame::parse(&Value::Array(items).to_string());
        }
    }
}
