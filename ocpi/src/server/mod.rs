//! The axum side: one [`axum::Router`] serving versions, credentials and the CPO Sender modules.
//!
//! Layering (outermost first): request/correlation ids on every response → token authentication (configuration
//! routes accept token A; functional routes don't) → routing headers (functional routes only) → handler.
//! URL layout: `/ocpi/versions`, `/ocpi/{version}`, `/ocpi/{version}/{module}` for each served version (2.3.0,
//! 2.2.1, 2.1.1 unless `Settings::versions` restricts it). Sender lists (locations, tariffs, sessions,
//! cdrs) also answer with a trailing slash (the spec's own examples use `/sessions/?date_from=…`).
//!
//! Functional routes: locations, tariffs, sessions (+ `/{session_id}/charging_preferences`), cdrs as Sender;
//! tokens (`/{country_code}/{party_id}/{token_uid}`), commands (`/{command}`) and chargingprofiles
//! (`/{session_id}`: PUT, GET, DELETE) as Receiver.
//! Configuration route for hubs: hubclientinfo (`/{country_code}/{party_id}`) as Receiver, peer tokens only, no
//! routing headers.

mod auth;
mod chargingprofiles;
mod commands;
mod credentials;
mod hubclientinfo;
mod list;
mod locations;
mod pagination;
mod sessions;
mod tokens;
mod versions;

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::Router;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;

use crate::backend::CpoBackend;
use crate::platform::Platform;
use crate::types::{InterfaceRole, ModuleId, OcpiVersion};

pub use auth::{Caller, RequestFrom};
pub use pagination::{Keyset, Page, PageParams, paginate};

/// A module listed in our version details at `/ocpi/2.2.1/{identifier}` (see `CpoBackend::advertised_modules`
/// and `Settings::extra_modules`; routes beyond ours are the daemon's to add).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdvertisedModule {
    /// Module identifier, e.g. `sessions`.
    pub identifier: ModuleId,
    /// Our role for that module.
    pub role: InterfaceRole,
}

/// Builds the router. Routes are absolute (`/ocpi/...`); merge it into the daemon's router or serve it directly.
/// Every version we serve (`Settings::versions`) gets its own tree `/ocpi/{version}/...`; its handlers see
/// the version as an `Extension<OcpiVersion>` and answer in that version's shape ([`crate::codec`]).
pub fn router<B: CpoBackend>(platform: Arc<Platform<B>>) -> Router {
    let mut router = Router::new().route(
        "/ocpi/versions",
        get(versions::versions::<B>).layer(from_fn_with_state(
            platform.clone(),
            auth::authenticate_configuration::<B>,
        )),
    );
    for version in platform.settings().served_versions() {
        router = router.merge(version_routes(&platform, version));
    }
    router
        .with_state(platform)
        .layer(from_fn(auth::request_ids))
        .layer(axum::middleware::map_response(envelope_every_error))
}

/// The routes of one version under `/ocpi/{version}`. 2.1.1 has no charging preferences and no
/// hubclientinfo.
fn version_routes<B: CpoBackend>(
    platform: &Arc<Platform<B>>,
    version: OcpiVersion,
) -> Router<Arc<Platform<B>>> {
    let base = format!("/ocpi/{version}");
    let at = |suffix: &str| format!("{base}{suffix}");
    let config = Router::new()
        .route(&base, get(versions::details::<B>))
        .route(
            &at("/credentials"),
            get(credentials::get::<B>)
                .post(credentials::post::<B>)
                .put(credentials::put::<B>)
                .delete(credentials::delete::<B>),
        )
        .layer(from_fn_with_state(
            platform.clone(),
            auth::authenticate_configuration::<B>,
        ));

    let mut functional = Router::new()
        .route(&at("/locations"), get(list::list::<B, list::Locations>))
        .route(&at("/locations/"), get(list::list::<B, list::Locations>))
        .route(
            &at("/locations/{location_id}"),
            get(locations::location::<B>),
        )
        .route(
            &at("/locations/{location_id}/{evse_uid}"),
            get(locations::evse::<B>),
        )
        .route(
            &at("/locations/{location_id}/{evse_uid}/{connector_id}"),
            get(locations::connector::<B>),
        )
        .route(&at("/tariffs"), get(list::list::<B, list::Tariffs>))
        .route(&at("/tariffs/"), get(list::list::<B, list::Tariffs>))
        .route(&at("/sessions"), get(list::list::<B, list::Sessions>))
        .route(&at("/sessions/"), get(list::list::<B, list::Sessions>))
        .route(&at("/cdrs"), get(list::list::<B, list::Cdrs>))
        .route(&at("/cdrs/"), get(list::list::<B, list::Cdrs>))
        .route(
            &at("/tokens/{country_code}/{party_id}/{token_uid}"),
            get(tokens::get::<B>)
                .put(tokens::put::<B>)
                .patch(tokens::patch::<B>),
        )
        .route(&at("/commands/{command}"), post(commands::post::<B>));
    if !version.is_2_1_1() {
        functional = functional
            .route(
                &at("/sessions/{session_id}/charging_preferences"),
                put(sessions::charging_preferences::<B>),
            )
            .route(
                &at("/chargingprofiles/{session_id}"),
                put(chargingprofiles::put::<B>)
                    .get(chargingprofiles::get::<B>)
                    .delete(chargingprofiles::delete::<B>),
            );
    }
    let functional = functional
        .layer(from_fn_with_state(
            platform.clone(),
            auth::routing_headers::<B>,
        ))
        .layer(from_fn_with_state(
            platform.clone(),
            auth::authenticate_functional::<B>,
        ));

    let mut routes = Router::new().merge(config).merge(functional);
    if !version.is_2_1_1() {
        // A configuration module: peer tokens only, no routing headers.
        let hub = Router::new()
            .route(
                &at("/hubclientinfo/{country_code}/{party_id}"),
                get(hubclientinfo::get::<B>).put(hubclientinfo::put::<B>),
            )
            .layer(from_fn_with_state(
                platform.clone(),
                auth::authenticate_functional::<B>,
            ));
        routes = routes.merge(hub);
    }
    routes.layer(Extension(version))
}

/// Every error a peer gets is an OCPI envelope: axum's own plain-text answers (unknown path 404,
/// wrong method 405, body over the limit 413, unreadable body 400) get an envelope body with
/// the same HTTP status (2001 for a client error, 3000 for ours).
async fn envelope_every_error(response: axum::response::Response) -> axum::response::Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let code = if status.is_server_error() { 3000 } else { 2001 };
    let message = status.canonical_reason().unwrap_or("error").to_owned();
    let body = crate::envelope::Response::<()>::error(code, message);
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let mut out = axum::response::IntoResponse::into_response(axum::Json(body));
    *out.status_mut() = status;
    for (name, value) in parts.headers.iter() {
        if name != axum::http::header::CONTENT_TYPE {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// Functional routes the daemon adds (e.g. sessions later) can reuse our authentication and routing headers by
/// wrapping them with this: requests carry a [`Caller`] extension afterwards.
pub fn protect_functional<B: CpoBackend>(routes: Router, platform: Arc<Platform<B>>) -> Router {
    routes
        .layer(from_fn_with_state(
            platform.clone(),
            auth::routing_headers::<B>,
        ))
        .layer(from_fn_with_state(
            platform,
            auth::authenticate_functional::<B>,
        ))
        .layer(from_fn(auth::request_ids))
}

/// An envelope with HTTP 404 and a specific OCPI code (e.g. unknown token → 2004, preferences on an EVSE without the
/// capability → 2001), for the cases where [`crate::OcpiError`]'s fixed mapping doesn't fit.
pub(crate) fn not_found(status_code: u16, message: impl Into<String>) -> Response {
    let message = message.into();
    tracing::debug!(status_code, %message, "OCPI request answered 404");
    (
        StatusCode::NOT_FOUND,
        Json(crate::envelope::Response::error(status_code, message)),
    )
        .into_response()
}
