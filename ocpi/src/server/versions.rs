//! Versions and version details endpoints: cheap, side-effect free (hubs use them as liveness checks), open to
//! token A and peer tokens, no routing headers. Version details list `CpoBackend::advertised_modules` followed by
//! `Settings::extra_modules`, without duplicates.

use std::sync::Arc;

use axum::extract::State;

use crate::backend::CpoBackend;
use crate::envelope::Response;
use crate::platform::Platform;
use crate::types::{Endpoint, InterfaceRole, ModuleId, OCPI_2_2_1, Version, VersionDetails};

pub(super) async fn versions<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
) -> Response<Vec<Version>> {
    Response::success(vec![Version {
        version: OCPI_2_2_1.into(),
        url: platform.settings().version_url(),
    }])
}

pub(super) async fn details<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
) -> Response<VersionDetails> {
    let settings = platform.settings();
    let mut modules: Vec<(ModuleId, InterfaceRole)> = Vec::new();
    for extra in platform
        .backend()
        .advertised_modules()
        .iter()
        .chain(&settings.extra_modules)
    {
        if !modules
            .iter()
            .any(|(m, r)| m == &extra.identifier && *r == extra.role)
        {
            modules.push((extra.identifier.clone(), extra.role));
        }
    }
    let endpoints = modules
        .into_iter()
        .map(|(identifier, role)| Endpoint {
            url: settings.module_url(identifier.as_str()),
            identifier,
            role,
        })
        .collect();
    Response::success(VersionDetails {
        version: OCPI_2_2_1.into(),
        endpoints,
    })
}
