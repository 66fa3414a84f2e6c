//! CDRs Sender interface: paginated list (on `last_updated` = creation time).

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;

use crate::backend::CpoBackend;
use crate::envelope::OcpiError;
use crate::platform::Platform;

use super::auth::Caller;
use super::locations::peer;
use super::pagination::{PageParams, paginate};

pub(super) async fn list<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
) -> Result<Response, OcpiError> {
    let settings = platform.settings();
    let params = PageParams::from_uri(&uri, settings.page_limit())?;
    let items = platform.backend().cdrs(peer(&caller)?)?;
    Ok(paginate(
        items,
        |c| c.last_updated,
        &params,
        &settings.module_url("cdrs"),
        settings.page_limit(),
    ))
}
