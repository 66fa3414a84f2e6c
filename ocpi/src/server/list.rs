//! The one paginated GET handler of every Sender list (locations, tariffs, sessions, cdrs): the
//! module says which backend list to read and which field is `last_updated`; filtering by
//! `date_from`/`date_to`, slicing and the `Link` / `X-Total-Count` / `X-Limit` headers are
//! [`PageParams`]'s. Sessions and CDRs are per party: the backend pages them for the caller,
//! narrowed to the request's `OCPI-from-*` party (a hub's eMSP).

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use serde::Serialize;

use crate::backend::CpoBackend;
use crate::codec;
use crate::envelope::OcpiError;
use crate::peer::Peer;
use crate::platform::Platform;
use crate::types::{Cdr, CountryCode, DateTime, Location, OcpiVersion, PartyId, Session, Tariff};

use super::auth::{Caller, RequestFrom};
use super::pagination::{Page, PageParams};

/// The peer behind a functional request (token A never gets here).
pub(super) fn peer(caller: &Caller) -> Result<&Peer, OcpiError> {
    match caller {
        Caller::Peer(peer) => Ok(peer),
        Caller::TokenA(_) => Err(OcpiError::Unauthorized),
    }
}

/// A Sender list module.
pub(super) trait SenderList<B: CpoBackend>: Send + Sync + 'static {
    /// The listed object.
    type Item: Serialize;
    /// Module identifier (the last segment of the list URL).
    const MODULE: &'static str;
    /// Everything `caller` may see, in a stable order.
    fn items(backend: &B, caller: &Peer) -> Result<Vec<Self::Item>, OcpiError>;
    /// The object's `last_updated`.
    fn last_updated(item: &Self::Item) -> DateTime;
    /// The objects of one page as a peer of `version` expects them ([`crate::codec`]).
    fn encode(
        backend: &B,
        caller: &Peer,
        version: OcpiVersion,
        items: Vec<Self::Item>,
    ) -> Result<Vec<serde_json::Value>, OcpiError>;
    /// One page for `caller` (narrowed to the requesting party `from` where the module is
    /// per-party). Default: [`SenderList::items`] sliced in memory.
    fn page(
        backend: &B,
        caller: &Peer,
        from: Option<&(CountryCode, PartyId)>,
        params: &PageParams,
    ) -> Result<Page<Self::Item>, OcpiError> {
        let _ = from;
        Ok(params.page(Self::items(backend, caller)?, Self::last_updated))
    }
}

/// `GET {module}?date_from=&date_to=&offset=&limit=` for any [`SenderList`].
pub(super) async fn list<B: CpoBackend, L: SenderList<B>>(
    State(platform): State<Arc<Platform<B>>>,
    Extension(caller): Extension<Caller>,
    Extension(version): Extension<OcpiVersion>,
    from: Option<Extension<RequestFrom>>,
    uri: Uri,
) -> Result<Response, OcpiError> {
    let settings = platform.settings();
    let params = PageParams::from_uri(&uri, settings.page_limit())?;
    let from = from.map(|Extension(RequestFrom(cc, pid))| (cc, pid));
    let caller = peer(&caller)?;
    let page = L::page(platform.backend(), caller, from.as_ref(), &params)?;
    let page = Page {
        total: page.total,
        next_cursor: page.next_cursor,
        items: L::encode(platform.backend(), caller, version, page.items)?,
    };
    Ok(params.respond(
        page,
        &settings.module_url_of(version, L::MODULE),
        settings.page_limit(),
    ))
}

/// The caller's Locations by id, for the Location a 2.1.1 Session/CDR embeds (empty for other
/// versions: nothing to look up).
fn locations_for<B: CpoBackend>(
    backend: &B,
    caller: &Peer,
    version: OcpiVersion,
) -> Result<Vec<Location>, OcpiError> {
    if version.is_2_1_1() {
        backend.locations(caller)
    } else {
        Ok(Vec::new())
    }
}

/// Locations.
pub(super) struct Locations;
/// Tariffs.
pub(super) struct Tariffs;
/// Sessions.
pub(super) struct Sessions;
/// CDRs.
pub(super) struct Cdrs;

impl<B: CpoBackend> SenderList<B> for Locations {
    type Item = Location;
    const MODULE: &'static str = "locations";
    fn items(backend: &B, caller: &Peer) -> Result<Vec<Location>, OcpiError> {
        backend.locations(caller)
    }
    fn last_updated(item: &Location) -> DateTime {
        item.last_updated
    }
    fn encode(
        _: &B,
        _: &Peer,
        version: OcpiVersion,
        items: Vec<Location>,
    ) -> Result<Vec<serde_json::Value>, OcpiError> {
        Ok(items.iter().map(|l| codec::location(version, l)).collect())
    }
}

impl<B: CpoBackend> SenderList<B> for Tariffs {
    type Item = Tariff;
    const MODULE: &'static str = "tariffs";
    fn items(backend: &B, caller: &Peer) -> Result<Vec<Tariff>, OcpiError> {
        backend.tariffs(caller)
    }
    fn last_updated(item: &Tariff) -> DateTime {
        item.last_updated
    }
    fn encode(
        _: &B,
        _: &Peer,
        version: OcpiVersion,
        items: Vec<Tariff>,
    ) -> Result<Vec<serde_json::Value>, OcpiError> {
        Ok(items.iter().map(|t| codec::tariff(version, t)).collect())
    }
}

impl<B: CpoBackend> SenderList<B> for Sessions {
    type Item = Session;
    const MODULE: &'static str = "sessions";
    fn items(backend: &B, caller: &Peer) -> Result<Vec<Session>, OcpiError> {
        backend.sessions(caller)
    }
    fn last_updated(item: &Session) -> DateTime {
        item.last_updated
    }
    fn encode(
        backend: &B,
        caller: &Peer,
        version: OcpiVersion,
        items: Vec<Session>,
    ) -> Result<Vec<serde_json::Value>, OcpiError> {
        let locations = locations_for(backend, caller, version)?;
        Ok(items
            .iter()
            .map(|s| {
                let loc = locations.iter().find(|l| l.id == s.location_id);
                codec::session(version, s, loc)
            })
            .collect())
    }
    fn page(
        backend: &B,
        caller: &Peer,
        from: Option<&(CountryCode, PartyId)>,
        params: &PageParams,
    ) -> Result<Page<Session>, OcpiError> {
        backend.session_page(caller, from, params)
    }
}

impl<B: CpoBackend> SenderList<B> for Cdrs {
    type Item = Cdr;
    const MODULE: &'static str = "cdrs";
    fn items(backend: &B, caller: &Peer) -> Result<Vec<Cdr>, OcpiError> {
        backend.cdrs(caller)
    }
    fn last_updated(item: &Cdr) -> DateTime {
        item.last_updated
    }
    fn encode(
        backend: &B,
        caller: &Peer,
        version: OcpiVersion,
        items: Vec<Cdr>,
    ) -> Result<Vec<serde_json::Value>, OcpiError> {
        let locations = locations_for(backend, caller, version)?;
        Ok(items
            .iter()
            .map(|c| {
                let loc = locations
                    .iter()
                    .find(|l| l.id == c.cdr_location.id.as_str());
                codec::cdr(version, c, loc)
            })
            .collect())
    }
    fn page(
        backend: &B,
        caller: &Peer,
        from: Option<&(CountryCode, PartyId)>,
        params: &PageParams,
    ) -> Result<Page<Cdr>, OcpiError> {
        backend.cdr_page(caller, from, params)
    }
}
