//! Shape validation shared by the Sessions/CDRs/Tokens/Commands objects: what serde can't check (lengths, charsets,
//! URL shape, non-empty lists). Every problem is reported with a JSON-path-like field name, so a peer's 2001
//! answer says exactly what is wrong.
//!
//! Lengths are counted in bytes (the spec leaves bytes vs characters open; bytes are the stricter reading).
//! `CiString` = printable ASCII; `string` = UTF-8 without control characters; URL = `string(255)`, `http`/`https`.
//! See <https://github.com/ocpi/ocpi/blob/release-2.2.1-bugfixes/types.asciidoc>.

/// One problem found while validating an object.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    /// Where, e.g. `token.uid`.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

/// All problems of an object (never empty when returned as an error).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {object}: {}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ValidationErrors {
    /// Which object, e.g. `Token`.
    pub object: &'static str,
    /// The problems, in field order.
    pub problems: Vec<FieldError>,
}

impl ValidationErrors {
    /// True if some problem concerns `field` (exact match).
    pub fn has(&self, field: &str) -> bool {
        self.problems.iter().any(|p| p.field == field)
    }
}

impl From<ValidationErrors> for crate::envelope::OcpiError {
    fn from(e: ValidationErrors) -> Self {
        Self::InvalidParameters(e.to_string())
    }
}

/// Collects problems under a field prefix.
pub(crate) struct Checker {
    object: &'static str,
    prefix: String,
    problems: Vec<FieldError>,
}

impl Checker {
    pub(crate) fn new(object: &'static str) -> Self {
        Self {
            object,
            prefix: String::new(),
            problems: Vec::new(),
        }
    }

    fn path(&self, field: &str) -> String {
        if self.prefix.is_empty() {
            field.to_owned()
        } else {
            format!("{}.{field}", self.prefix)
        }
    }

    pub(crate) fn bad(&mut self, field: &str, problem: impl Into<String>) {
        let field = self.path(field);
        self.problems.push(FieldError {
            field,
            problem: problem.into(),
        });
    }

    /// Runs `f` with `prefix` appended to the field path.
    pub(crate) fn nested(&mut self, prefix: &str, f: impl FnOnce(&mut Self)) {
        let saved = std::mem::take(&mut self.prefix);
        self.prefix = if saved.is_empty() {
            prefix.to_owned()
        } else {
            format!("{saved}.{prefix}")
        };
        f(self);
        self.prefix = saved;
    }

    /// Required `CiString(max)` of at least `min` bytes.
    pub(crate) fn ci(&mut self, field: &str, value: &str, min: usize, max: usize) {
        if value.is_empty() {
            self.bad(field, "missing");
        } else if !value.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            self.bad(field, "must be printable ASCII");
        } else if value.len() < min || value.len() > max {
            self.bad(field, length(min, max));
        }
    }

    /// Optional `CiString(max)`.
    pub(crate) fn opt_ci(&mut self, field: &str, value: Option<&str>, max: usize) {
        if let Some(v) = value {
            self.ci(field, v, 1, max);
        }
    }

    /// Required `string(max)` (non-empty).
    pub(crate) fn string(&mut self, field: &str, value: &str, max: usize) {
        if value.is_empty() {
            self.bad(field, "missing");
        } else if value.chars().any(char::is_control) {
            self.bad(field, "must not contain control characters");
        } else if value.len() > max {
            self.bad(field, length(1, max));
        }
    }

    /// Optional `string(max)`.
    pub(crate) fn opt_string(&mut self, field: &str, value: Option<&str>, max: usize) {
        if let Some(v) = value {
            self.string(field, v, max);
        }
    }

    /// Required absolute `http`/`https` URL of at most `max` bytes.
    pub(crate) fn url(&mut self, field: &str, value: &str, max: usize) {
        self.string(field, value, max);
        if !value.is_empty() && value.len() <= max && !is_http_url(value) {
            self.bad(field, "must be an absolute http(s) URL");
        }
    }

    /// ISO 4217-shaped currency.
    pub(crate) fn currency(&mut self, field: &str, value: &str) {
        if value.len() != 3 || !value.bytes().all(|b| b.is_ascii_uppercase()) {
            self.bad(field, "must be a 3-letter ISO 4217 code");
        }
    }

    pub(crate) fn finish(self) -> Result<(), ValidationErrors> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors {
                object: self.object,
                problems: self.problems,
            })
        }
    }
}

fn length(min: usize, max: usize) -> String {
    if min <= 1 {
        format!("must be at most {max} bytes long")
    } else if min == max {
        format!("must be exactly {max} bytes long")
    } else {
        format!("must be {min}..={max} bytes long")
    }
}

/// True for an absolute `http://` or `https://` URL with a host.
pub(crate) fn is_http_url(value: &str) -> bool {
    reqwest::Url::parse(value)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checker_reports_paths_and_lengths() {
        let mut c = Checker::new("Thing");
        c.ci("uid", "", 1, 36);
        c.ci("cc", "NLD", 2, 2);
        c.nested("token", |c| {
            c.ci("uid", &"x".repeat(37), 1, 36);
            c.nested("inner", |c| c.string("name", "tab\there", 10));
        });
        c.url("response_url", "ftp://x/y", 255);
        c.url("ok_url", "https://emsp.example/cmd/1", 255);
        c.currency("currency", "eur");
        let e = c.finish().expect_err("invalid");
        let fields: Vec<_> = e.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "uid",
                "cc",
                "token.uid",
                "token.inner.name",
                "response_url",
                "currency"
            ]
        );
        assert!(e.has("token.uid"));
        assert!(
            e.to_string().starts_with("invalid Thing: uid: missing"),
            "{e}"
        );
        assert!(Checker::new("x").finish().is_ok());
    }
}
