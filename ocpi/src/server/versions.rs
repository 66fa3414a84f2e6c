//! Versions and version details endpoints: cheap, side-effect free (hubs use them as liveness checks), open to
//! token A and peer tokens, no routing headers. The versions list names every version we serve
//! (`Settings::versions`, highest first); the details of one version list `CpoBackend::advertised_modules`
//! followed by `Settings::extra_modules`, without duplicates, limited to the modules that version has (2.1.1: no
//! hubclientinfo or chargingprofiles, and endpoints without `role`).

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use serde_json::Value;

use crate::backend::CpoBackend;
use crate::codec;
use crate::envelope::Response;
use crate::platform::Platform;
use crate::types::{Endpoint, InterfaceRole, ModuleId, OcpiVersion, Version, VersionDetails};

pub(super) async fn versions<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
) -> Response<Vec<Version>> {
    let settings = platform.settings();
    Response::success(
        settings
            .served_versions()
            .into_iter()
            .map(|v| Version {
                version: v.as_str().into(),
                url: settings.version_url_of(v),
            })
            .collect(),
    )
}

pub(super) async fn details<B: CpoBackend>(
    State(platform): State<Arc<Platform<B>>>,
    Extension(version): Extension<OcpiVersion>,
) -> Response<Value> {
    let settings = platform.settings();
    let mut modules: Vec<(ModuleId, InterfaceRole)> = Vec::new();
    for extra in platform
        .backend()
        .advertised_modules()
        .iter()
        .chain(&settings.extra_modules)
    {
        if codec::has_module(version, &extra.identifier)
            && !modules
                .iter()
                .any(|(m, r)| m == &extra.identifier && *r == extra.role)
        {
            modules.push((extra.identifier.clone(), extra.role));
        }
    }
    let endpoints = modules
        .into_iter()
        .map(|(identifier, role)| Endpoint {
            url: settings.module_url_of(version, identifier.as_str()),
            identifier,
            role,
        })
        .collect();
    Response::success(codec::version_details(
        version,
        &VersionDetails {
            version: version.as_str().into(),
            endpoints,
        },
    ))
}
