//! Pagination for every Sender list: `date_from` (inclusive) / `date_to` (exclusive) on `last_updated`, `offset`
//! (default 0), `limit` (default = cap = `Settings::page_limit`), headers `X-Total-Count` (matches after the date
//! filter), `X-Limit` (the cap) and `Link: <…>; rel="next"` (only when more remain; carries all original query
//! parameters with the next offset and the effective limit).
//!
//! Order is the backend's order, which must be stable (see [`crate::CpoBackend`]). Malformed parameters → OCPI 2001.

use axum::http::{HeaderName, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Serialize;

use crate::client::headers;
use crate::envelope::{OcpiError, Response as Envelope};
use crate::types::DateTime;

const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b':');

/// Parsed list query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageParams {
    /// Items to skip.
    pub offset: usize,
    /// Page size (already capped).
    pub limit: usize,
    /// Only objects with `last_updated >= date_from`.
    pub date_from: Option<DateTime>,
    /// Only objects with `last_updated < date_to`.
    pub date_to: Option<DateTime>,
    /// Our own `cursor` parameter (only ever from a `Link` we sent): where a keyset-paged list
    /// continues ([`Page::next_cursor`]); `offset` is then informative only.
    pub cursor: Option<String>,
    /// All original query pairs (for the `Link` header).
    pairs: Vec<(String, String)>,
}

impl PageParams {
    /// Parses the query of `uri`; `cap` is our maximum page size.
    pub fn from_uri(uri: &Uri, cap: usize) -> Result<Self, OcpiError> {
        let pairs: Vec<(String, String)> = axum::extract::Query::try_from_uri(uri)
            .map(|q: axum::extract::Query<Vec<(String, String)>>| q.0)
            .map_err(|e| OcpiError::InvalidParameters(format!("query string: {e}")))?;
        let get = |name: &str| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim())
        };
        let number = |name: &str| -> Result<Option<usize>, OcpiError> {
            get(name)
                .filter(|v| !v.is_empty())
                .map(|v| {
                    v.parse::<usize>().map_err(|_| {
                        OcpiError::InvalidParameters(format!(
                            "{name}={v:?} is not a non-negative integer"
                        ))
                    })
                })
                .transpose()
        };
        let date = |name: &str| -> Result<Option<DateTime>, OcpiError> {
            get(name)
                .filter(|v| !v.is_empty())
                .map(|v| {
                    // An unencoded `+01:00` offset arrives as a space; undo that before parsing.
                    DateTime::parse(v)
                        .or_else(|_| DateTime::parse(&v.replace(' ', "+")))
                        .map_err(|_| {
                            OcpiError::InvalidParameters(format!("{name}={v:?} is not a DateTime"))
                        })
                })
                .transpose()
        };
        let cap = cap.max(1);
        let offset = number("offset")?.unwrap_or(0);
        let limit = match number("limit")? {
            Some(0) => {
                return Err(OcpiError::InvalidParameters(
                    "limit must be at least 1".into(),
                ));
            }
            Some(l) => l.min(cap),
            None => cap,
        };
        let (date_from, date_to) = (date("date_from")?, date("date_to")?);
        let cursor = match get("cursor").filter(|v| !v.is_empty()) {
            Some(c) if c.len() <= 256 => Some(c.to_owned()),
            Some(_) => {
                return Err(OcpiError::InvalidParameters("cursor is too long".into()));
            }
            None => None,
        };
        Ok(Self {
            offset,
            limit,
            date_from,
            date_to,
            cursor,
            pairs,
        })
    }

    /// No filter, no offset, no limit: a whole list.
    pub fn everything() -> Self {
        Self {
            offset: 0,
            limit: usize::MAX,
            date_from: None,
            date_to: None,
            cursor: None,
            pairs: Vec::new(),
        }
    }

    fn matches(&self, last_updated: DateTime) -> bool {
        self.date_from.is_none_or(|from| last_updated >= from)
            && self.date_to.is_none_or(|to| last_updated < to)
    }

    fn next_url(&self, base: &str, next_offset: usize, cursor: Option<&str>) -> String {
        let mut query: Vec<String> = self
            .pairs
            .iter()
            .filter(|(k, _)| k != "offset" && k != "limit" && k != "cursor")
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    utf8_percent_encode(k, QUERY),
                    utf8_percent_encode(v, QUERY)
                )
            })
            .collect();
        query.push(format!("offset={next_offset}"));
        query.push(format!("limit={}", self.limit));
        if let Some(c) = cursor {
            query.push(format!("cursor={}", utf8_percent_encode(c, QUERY)));
        }
        format!("{base}?{}", query.join("&"))
    }
}

/// One page of a Sender list and how many objects match the query on all pages (`X-Total-Count`).
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// The objects of this page, in list order.
    pub items: Vec<T>,
    /// Matches after the date filter, on all pages.
    pub total: usize,
    /// For a keyset-paged list: `Some(cursor)` when another page follows (the `Link` carries
    /// it), `None` at the end. Unused (`Keyset::No`) for lists sliced by offset.
    pub next_cursor: Keyset,
}

/// How a page continues.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Keyset {
    /// Sliced by offset: another page follows while `offset + items < total`.
    #[default]
    No,
    /// Keyset-paged: the next page starts after this cursor.
    Next(String),
    /// Keyset-paged, and this was the last page.
    End,
}

impl PageParams {
    /// Filters and slices a full list held in memory (backends with an index build the [`Page`]
    /// themselves).
    pub fn page<T>(&self, items: Vec<T>, last_updated: impl Fn(&T) -> DateTime) -> Page<T> {
        let matching: Vec<T> = items
            .into_iter()
            .filter(|i| self.matches(last_updated(i)))
            .collect();
        let total = matching.len();
        let items = matching
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .collect();
        Page {
            items,
            total,
            next_cursor: Keyset::No,
        }
    }

    /// Answers a page: the envelope and the `X-Total-Count`, `X-Limit` and `Link` headers. `base`
    /// is the absolute URL of the list endpoint (for `Link`); `cap` goes to `X-Limit`.
    pub fn respond<T: Serialize>(&self, page: Page<T>, base: &str, cap: usize) -> Response {
        let total = page.total;
        let next_offset = self.offset.saturating_add(page.items.len());
        let (more, cursor) = match &page.next_cursor {
            Keyset::No => (!page.items.is_empty() && next_offset < total, None),
            Keyset::Next(c) => (true, Some(c.as_str())),
            Keyset::End => (false, None),
        };
        let mut response = Envelope::success(page.items).into_response();
        let h = response.headers_mut();
        h.insert(
            HeaderName::from_static(headers::X_TOTAL_COUNT),
            HeaderValue::from(total),
        );
        h.insert(
            HeaderName::from_static(headers::X_LIMIT),
            HeaderValue::from(cap.max(1)),
        );
        if more
            && let Ok(link) = HeaderValue::from_str(&format!(
                "<{}>; rel=\"next\"",
                self.next_url(base, next_offset, cursor)
            ))
        {
            h.insert(axum::http::header::LINK, link);
        }
        response
    }
}

/// Filters, slices and answers a full list (for every Sender list, including ones the daemon adds). `base` is the
/// absolute URL of the list endpoint (for `Link`); `cap` goes to `X-Limit`.
pub fn paginate<T: Serialize>(
    items: Vec<T>,
    last_updated: impl Fn(&T) -> DateTime,
    params: &PageParams,
    base: &str,
    cap: usize,
) -> Response {
    params.respond(params.page(items, last_updated), base, cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<PageParams, OcpiError> {
        PageParams::from_uri(&format!("/x?{q}").parse().expect("uri"), 100)
    }

    #[test]
    fn defaults_caps_and_errors() {
        let p = parse("").expect("ok");
        assert_eq!((p.offset, p.limit, p.date_from), (0, 100, None));
        assert_eq!(parse("limit=1000").expect("ok").limit, 100);
        assert_eq!(parse("offset=5&limit=7").expect("ok").offset, 5);
        for bad in [
            "offset=-1",
            "offset=abc",
            "limit=0",
            "limit=1.5",
            "date_from=yesterday",
            "date_to=2020-13-01T00:00:00Z",
        ] {
            assert!(
                matches!(parse(bad), Err(OcpiError::InvalidParameters(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn dates_accept_unencoded_plus_and_link_keeps_filters() {
        let p = parse("date_from=2020-01-01T01:00:00+01:00&limit=10&foo=bar").expect("ok");
        assert_eq!(
            p.date_from.map(|d| d.to_string()).as_deref(),
            Some("2020-01-01T00:00:00Z")
        );
        let link = p.next_url("https://x/ocpi/2.2.1/locations", 10, None);
        assert_eq!(
            link,
            "https://x/ocpi/2.2.1/locations?date_from=2020-01-01T01:00:00%2001:00&foo=bar&offset=10&limit=10"
        );
    }

    #[test]
    fn a_keyset_link_carries_the_cursor_and_replaces_an_old_one() {
        let p = parse("limit=2&cursor=5.old&date_from=2020-01-01T00:00:00Z").expect("ok");
        assert_eq!(p.cursor.as_deref(), Some("5.old"));
        let link = p.next_url("https://x/s", 4, Some("17.a b"));
        assert_eq!(
            link,
            "https://x/s?date_from=2020-01-01T00:00:00Z&offset=4&limit=2&cursor=17.a%20b"
        );
        assert!(parse(&format!("cursor={}", "x".repeat(300))).is_err());
    }
}
