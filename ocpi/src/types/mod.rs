//! Hand-written serde types for OCPI 2.2.1 (CPO-relevant subset).
//!
//! Rules kept throughout (serde_json `arbitrary_precision` is on for the whole build): no `untagged`, `flatten` or
//! internally tagged enums; decimals are JSON numbers; open enums are `Known | Other(String)` with manual serde;
//! optional fields are omitted when `None`.

mod cdr;
mod charging_profile;
mod command;
mod common;
mod credentials;
mod datetime;
mod hubclientinfo;
mod ids;
mod location;
mod session;
mod tariff;
mod token;
mod validate;
mod version;

pub use cdr::*;
pub use charging_profile::*;
pub use command::*;
pub use common::*;
pub use credentials::*;
pub use datetime::*;
pub use hubclientinfo::*;
pub use ids::*;
pub use location::*;
pub use session::*;
pub use tariff::*;
pub use token::*;
pub(crate) use validate::is_http_url;
pub use validate::{FieldError, ValidationErrors};
pub use version::*;
