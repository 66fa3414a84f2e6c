//! [`Settings`]: who we are on the OCPI network and how our endpoints are reached.
//!
//! Deserialisable so the daemon can embed it in its config file (`deny_unknown_fields`).

use serde::Deserialize;

use crate::types::{
    AuthToken, BusinessDetails, CountryCode, CredentialsRole, OcpiVersion, PartyId, Role,
};

/// Default and maximum page size of our Sender list endpoints.
pub const DEFAULT_PAGE_LIMIT: usize = 100;

/// Our identity and public URL.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Externally visible base URL, without trailing slash, e.g. `https://cpo.example.com`. Our versions URL is
    /// `{public_url}/ocpi/versions`.
    pub public_url: String,
    /// Our CPO country code.
    pub country_code: CountryCode,
    /// Our CPO party id.
    pub party_id: PartyId,
    /// Our business name.
    pub business_name: String,
    /// Our website.
    #[serde(default)]
    pub website: Option<String>,
    /// Token A we hand out for peers that register with us (only valid on versions + credentials).
    #[serde(default)]
    pub token_a: Option<AuthToken>,
    /// Maximum page size (`X-Limit`) of list endpoints.
    #[serde(default = "default_page_limit")]
    pub page_limit: usize,
    /// Modules to advertise in version details in addition to `CpoBackend::advertised_modules`.
    #[serde(default)]
    pub extra_modules: Vec<crate::server::AdvertisedModule>,
    /// The OCPI versions we serve and negotiate (default: 2.3.0, 2.2.1 and 2.1.1).
    #[serde(default = "default_versions")]
    pub versions: Vec<OcpiVersion>,
}

fn default_versions() -> Vec<OcpiVersion> {
    OcpiVersion::ALL.to_vec()
}

fn default_page_limit() -> usize {
    DEFAULT_PAGE_LIMIT
}

impl Settings {
    /// Minimal settings for a CPO (page limit default, no token A, no extra modules).
    pub fn new(
        public_url: impl Into<String>,
        country_code: &str,
        party_id: &str,
        business_name: &str,
    ) -> Self {
        Self {
            public_url: public_url.into(),
            country_code: country_code.into(),
            party_id: party_id.into(),
            business_name: business_name.into(),
            website: None,
            token_a: None,
            page_limit: DEFAULT_PAGE_LIMIT,
            extra_modules: Vec::new(),
            versions: default_versions(),
        }
    }

    /// `{public_url}` without trailing slashes.
    pub fn base_url(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }

    /// Our versions URL: `{public_url}/ocpi/versions`.
    pub fn versions_url(&self) -> String {
        format!("{}/ocpi/versions", self.base_url())
    }

    /// Our 2.2.1 version details URL.
    pub fn version_url(&self) -> String {
        self.version_url_of(OcpiVersion::V2_2_1)
    }

    /// URL of one of our 2.2.1 module endpoints.
    pub fn module_url(&self, module: &str) -> String {
        self.module_url_of(OcpiVersion::V2_2_1, module)
    }

    /// Our version details URL of `version`: `{public_url}/ocpi/{version}`.
    pub fn version_url_of(&self, version: OcpiVersion) -> String {
        format!("{}/ocpi/{version}", self.base_url())
    }

    /// URL of one of our module endpoints of `version`.
    pub fn module_url_of(&self, version: OcpiVersion, module: &str) -> String {
        format!("{}/{module}", self.version_url_of(version))
    }

    /// The versions we serve, highest first, without duplicates (all three when none is set).
    pub fn served_versions(&self) -> Vec<OcpiVersion> {
        let mut v: Vec<OcpiVersion> = if self.versions.is_empty() {
            OcpiVersion::ALL.to_vec()
        } else {
            self.versions.clone()
        };
        v.sort_by(|a, b| b.cmp(a));
        v.dedup();
        v
    }

    /// Our single CPO role.
    pub fn role(&self) -> CredentialsRole {
        CredentialsRole {
            role: Role::Cpo,
            business_details: BusinessDetails {
                name: self.business_name.clone(),
                website: self.website.clone(),
                logo: None,
            },
            party_id: self.party_id.clone(),
            country_code: self.country_code.clone(),
        }
    }

    /// Effective page limit (at least 1).
    pub fn page_limit(&self) -> usize {
        self.page_limit.max(1)
    }
}
