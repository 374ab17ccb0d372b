//! The `[acme]` table and a site's `acme = {…}`: the CA's directory, the contact, the
//! profile, and the files graced-acme writes for the site.

use std::path::PathBuf;

use toml::Spanned;

use super::Checker;
use crate::model::{ACME_CHALLENGE_DIRECTORY, ACME_STATE_DIRECTORY, Acme, Secret, SiteAcme, SiteTls};
use crate::raw::{RawAcme, RawSite};

impl Checker<'_> {
    pub(super) fn acme(&mut self, raw: &RawAcme) -> Acme {
        let mut dir = |value: &Option<Spanned<String>>, default: &str| match value {
            None => PathBuf::from(default),
            Some(v) if v.get_ref().is_empty() => {
                self.problem(v, "an [acme] directory is empty", "give an absolute path, or remove the key");
                PathBuf::from(default)
            }
            Some(v) => self.absolute(v.get_ref()),
        };
        Acme {
            state_directory: dir(&raw.state_directory, ACME_STATE_DIRECTORY),
            challenge_directory: dir(&raw.challenge_directory, ACME_CHALLENGE_DIRECTORY),
        }
    }

    /// A site's `acme = {…}` and the certificate and key it stands for; `None` when the site
    /// has none or it is invalid (every problem recorded).
    pub(super) fn site_acme(
        &mut self,
        s: &RawSite,
        hosts: &[String],
        acme: &Acme,
    ) -> Option<(SiteAcme, SiteTls)> {
        let raw = s.acme.as_ref()?;
        let at = raw;
        let raw = raw.get_ref();
        let mut ok = true;
        if let Some(both) = s.certificate.as_ref().or(s.key.as_ref()) {
            self.problem(
                both,
                "this site has acme = {…} and its own certificate or key",
                "a site's certificate comes from ACME or from certificate/key: remove one",
            );
            ok = false;
        }
        if hosts.is_empty() {
            self.problem(
                at,
                "acme = {…} on a site without hosts",
                "give the site hosts = [\"example.org\"]: the CA issues for names",
            );
            ok = false;
        }
        for host in hosts {
            if host.contains('*') || host.contains(':') || host.starts_with('[') {
                self.problem(
                    at,
                    format!("acme = {{…}} cannot get a certificate for {host:?} by HTTP-01"),
                    "HTTP-01 validates DNS names only: list plain host names, or use certificate/key",
                );
                ok = false;
            }
        }
        let directory = raw.directory.get_ref();
        if !directory.starts_with("https://") || directory.len() <= "https://".len() {
            self.problem(
                &raw.directory,
                format!("ACME directory {directory:?} is not an https:// URL"),
                "use the CA's directory URL, e.g. \"https://acme-v02.api.letsencrypt.org/directory\"",
            );
            ok = false;
        }
        if let Some(contact) = &raw.contact
            && (!contact.get_ref().starts_with("mailto:") || !contact.get_ref().contains('@'))
        {
            self.problem(
                contact,
                "contact is not a mailto: address",
                "write contact = \"mailto:admin@example.org\"",
            );
            ok = false;
        }
        if let Some(profile) = &raw.profile
            && (profile.get_ref().is_empty() || !profile.get_ref().bytes().all(|b| b.is_ascii_graphic()))
        {
            self.problem(
                profile,
                "profile is empty or has spaces",
                "use a profile name the CA lists, e.g. \"tlsserver\"",
            );
            ok = false;
        }
        let directory_ca = raw.directory_ca.as_ref().map(|p| self.absolute(p.get_ref()));
        if !ok {
            return None;
        }
        let site = SiteAcme {
            directory: directory.clone(),
            contact: raw.contact.as_ref().map(|c| c.get_ref().clone()),
            profile: raw.profile.as_ref().map(|p| p.get_ref().clone()),
            directory_ca,
            name: hosts[0].clone(),
        };
        let tls = SiteTls {
            certificate: Secret::File(site.certificate_path(acme)),
            key: Secret::File(site.key_path(acme)),
        };
        Some((site, tls))
    }
}
