//! The TLS rules that span tables — listeners against sites — and the syntax of
//! `credential:NAME`; a leaf: `check` records where the TLS keys are and turns the
//! problems found here into diagnostics.

use std::ops::Range;

/// Where the TLS keys of one file are, for the rules that relate tables.
#[derive(Debug, Default)]
pub(crate) struct TlsSpans {
    /// Every `[[listen]] tls = true`.
    pub(crate) tls_listeners: Vec<Range<usize>>,
    /// How many listeners are plain HTTP (not TLS, not the status endpoint): where HTTP-01
    /// challenges are answered.
    pub(crate) plain_listeners: usize,
    pub(crate) sites: Vec<SiteSpans>,
}

/// Where one `[[site]]`'s TLS keys are (only those that are set and on).
#[derive(Debug, Default)]
pub(crate) struct SiteSpans {
    /// `certificate = …` (the site has a certificate and key).
    pub(crate) certificate: Option<Range<usize>>,
    /// `acme = {…}` (the site's certificate comes from graced-acme).
    pub(crate) acme: Option<Range<usize>>,
    /// `https_redirect = true`.
    pub(crate) https_redirect: Option<Range<usize>>,
    /// `hsts = …` other than `false`.
    pub(crate) hsts: Option<Range<usize>>,
}

/// One problem: where, what, and what to do.
pub(crate) struct Problem {
    pub(crate) at: Range<usize>,
    pub(crate) message: String,
    pub(crate) hint: &'static str,
}

/// Every problem between listeners and sites.
pub(crate) fn cross_check(spans: &TlsSpans) -> Vec<Problem> {
    let mut problems = Vec::new();
    let any_tls_listener = !spans.tls_listeners.is_empty();
    let any_certificate = spans.sites.iter().any(|s| s.certificate.is_some() || s.acme.is_some());
    if !any_certificate {
        for at in &spans.tls_listeners {
            problems.push(Problem {
                at: at.clone(),
                message: "this listener has tls = true, but no [[site]] has a certificate".into(),
                hint: "give a [[site]] certificate = \"/etc/graced/tls/site.pem\" and key = …, or remove tls = true",
            });
        }
    }
    for site in &spans.sites {
        if let Some(at) = &site.certificate
            && !any_tls_listener
        {
            problems.push(Problem {
                at: at.clone(),
                message: "this site has a certificate, but no [[listen]] has tls = true".into(),
                hint: "add a [[listen]] with tls = true (e.g. address = \"[::]:443\"), or remove certificate and key",
            });
        }
        if let Some(at) = &site.acme {
            if !any_tls_listener {
                problems.push(Problem {
                    at: at.clone(),
                    message: "this site has acme = {…}, but no [[listen]] has tls = true".into(),
                    hint: "add a [[listen]] with tls = true (e.g. address = \"[::]:443\"), or remove acme",
                });
            }
            if spans.plain_listeners == 0 {
                problems.push(Problem {
                    at: at.clone(),
                    message: "this site has acme = {…}, but no plain-HTTP [[listen]] answers HTTP-01 challenges".into(),
                    hint: "add a [[listen]] without tls (e.g. address = \"[::]:80\"): the CA fetches /.well-known/acme-challenge/ over HTTP",
                });
            }
        }
        if let Some(at) = &site.https_redirect
            && !any_tls_listener
        {
            problems.push(Problem {
                at: at.clone(),
                message: "https_redirect = true, but no [[listen]] has tls = true".into(),
                hint: "add a [[listen]] with tls = true, or remove https_redirect",
            });
        }
        if let Some(at) = &site.hsts
            && site.certificate.is_none()
            && site.acme.is_none()
        {
            problems.push(Problem {
                at: at.clone(),
                message: "hsts is set on a site without a certificate".into(),
                hint: "Strict-Transport-Security is sent over HTTPS only: give the site certificate and key, or remove hsts",
            });
        }
    }
    problems
}

/// Why `name` is not a systemd credential name, if it is not: 1–255 printable ASCII
/// characters, no `/` or `:`, not `.` or `..` (systemd's `credential_name_valid()`: a
/// file name and an fd name at once).
pub(crate) fn credential_name_problem(name: &str) -> Option<String> {
    let why = if name.is_empty() {
        "is empty"
    } else if name.len() > 255 {
        "is longer than 255 characters"
    } else if name == "." || name == ".." {
        "is not a file name"
    } else if name.contains('/') {
        "contains '/'"
    } else if name.contains(':') {
        "contains ':'"
    } else if !name.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        "contains a character that is not printable ASCII"
    } else {
        return None;
    };
    Some(format!("credential name {name:?} {why}"))
}

#[cfg(test)]
mod tests {
    use super::credential_name_problem;

    #[test]
    fn credential_names_follow_systemd() {
        for good in ["site.pem", "graced-key", "a", "x_y.z", &"n".repeat(255)] {
            assert_eq!(credential_name_problem(good), None, "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a:b", "tab\there", "é", &"n".repeat(256)] {
            assert!(credential_name_problem(bad).is_some(), "{bad:?}");
        }
    }
}
