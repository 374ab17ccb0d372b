//! One run over every ACME site: which are due, the orders, the checks before anything is
//! installed, the files written, the back-off after a failure, and the reload marker.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use graced_config::{Config, Site, SiteAcme};
use instant_acme::{Account, CertificateIdentifier};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::AcmeError;
use crate::issue::{self, Issued};
use crate::schedule::{Lifetime, Retry};
use crate::store::{self, PRIVATE, PUBLIC};

/// What a run did for one site.
#[derive(Debug)]
pub enum Outcome {
    /// A new certificate is installed (graced serves it after the reload).
    Installed { site: String, not_after: SystemTime, renewed: bool },
    /// The serving certificate is not due before `at` (`by_ari`: the CA's window said so).
    NotDue { site: String, at: SystemTime, by_ari: bool },
    /// An earlier failure's back-off runs until `until`.
    BackingOff { site: String, until: SystemTime, error: String },
    /// This attempt failed; the serving certificate (if any) stays. Next try at `retry`.
    Failed { site: String, error: AcmeError, retry: SystemTime },
}

/// How a run goes.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Order even when not due and during a back-off.
    pub force: bool,
    pub now: SystemTime,
}

/// `<state>/reload-pending`: a certificate was installed and graced has not reloaded since.
pub fn reload_marker(config: &Config) -> PathBuf {
    config.acme.state_directory.join("reload-pending")
}

/// Runs every ACME site of `config` in order.
pub async fn run(config: &Config, options: Options) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for site in &config.sites {
        if let Some(acme) = &site.acme {
            outcomes.push(run_site(config, site, acme, options).await);
        }
    }
    outcomes
}

async fn run_site(config: &Config, site: &Site, acme: &SiteAcme, options: Options) -> Outcome {
    let name = acme.name.clone();
    let retry_path = config.acme.state_directory.join(&name).join("retry.json");
    let retry = Retry::load(&retry_path).unwrap_or_default();
    if !options.force && retry.failures > 0 && options.now < retry.next() {
        return Outcome::BackingOff { site: name, until: retry.next(), error: retry.error };
    }
    let certificate = acme.certificate_path(&config.acme);
    let current = store::read_optional(&certificate).ok().flatten();
    let lifetime = current.as_deref().and_then(Lifetime::of_chain);
    match attempt(config, site, acme, current.as_deref(), lifetime, options).await {
        Ok(outcome) => {
            if matches!(outcome, Outcome::Installed { .. }) {
                let _ = std::fs::remove_file(&retry_path);
            }
            outcome
        }
        Err(error) => {
            let next = retry.failed(options.now, &error.to_string(), lifetime.map(|l| l.not_after));
            let retry = next.next();
            if let Ok(json) = serde_json::to_vec(&next) {
                let _ = store::write_atomic(&retry_path, &json, PUBLIC);
            }
            Outcome::Failed { site: name, error, retry }
        }
    }
}

async fn attempt(
    config: &Config,
    site: &Site,
    acme: &SiteAcme,
    current: Option<&[u8]>,
    lifetime: Option<Lifetime>,
    options: Options,
) -> Result<Outcome, AcmeError> {
    let name = acme.name.clone();
    let state = &config.acme.state_directory;
    // The serving pair still passes graced's checks (hosts unchanged, not expired)?
    let key = store::read_optional(&acme.key_path(&config.acme))?;
    let serving_ok = match (current, key.as_deref()) {
        (Some(chain), Some(key)) => graced_tls::check_candidate(site, &name, chain, key, options.now).is_ok(),
        _ => false,
    };
    let leaf_id = current.and_then(certificate_id);
    let account = issue::account(acme, state, &name).await;
    // Asked once: it decides when the serving certificate is due and whether the order
    // names it as the one it replaces.
    let ari = match (&account, &leaf_id) {
        (Ok(account), Some(id)) => ari_start(account, id).await,
        _ => None,
    };
    if serving_ok && !options.force {
        let (at, by_ari) = match ari {
            Some(at) => (at, true),
            None => (lifetime.map_or(options.now, |l| l.two_thirds()), false),
        };
        if options.now < at {
            return Ok(Outcome::NotDue { site: name, at, by_ari });
        }
    }
    let account = account?;
    let replaces = leaf_id.filter(|_| ari.is_some());
    let Issued { chain, key } =
        issue::order(&account, acme, &site.hosts, &config.acme.challenge_directory, replaces).await?;
    // Checked at the time it arrived (a CA may set notBefore to the second it signed).
    install(config, site, acme, chain.as_bytes(), key.as_bytes(), SystemTime::now(), current.is_some())
}

/// Checks the CA's `chain` and `key` as graced would load them, then writes them (key
/// first, both atomically) and the reload marker. A pair that fails a check is never
/// written: the serving files stay as they are.
pub fn install(
    config: &Config,
    site: &Site,
    acme: &SiteAcme,
    chain: &[u8],
    key: &[u8],
    now: SystemTime,
    renewed: bool,
) -> Result<Outcome, AcmeError> {
    let name = acme.name.clone();
    let info = graced_tls::check_candidate(site, &format!("{name} from {}", acme.directory), chain, key, now)
        .map_err(|source| AcmeError::Check { site: name.clone(), source: Box::new(source) })?;
    store::write_atomic(&acme.key_path(&config.acme), key, PRIVATE)?;
    store::write_atomic(&acme.certificate_path(&config.acme), chain, PUBLIC)?;
    store::write_atomic(&reload_marker(config), name.as_bytes(), PUBLIC)?;
    Ok(Outcome::Installed { site: name, not_after: info.not_after, renewed })
}

/// The start of the CA's suggested renewal window; `None` when it offers no ARI or the
/// request fails (then two thirds of the lifetime decide).
async fn ari_start(account: &Account, id: &CertificateIdentifier<'static>) -> Option<SystemTime> {
    let (info, _) = account.renewal_info(id).await.ok()?;
    Some(SystemTime::from(info.suggested_window.start))
}

/// ARI's identifier of the leaf of a PEM chain.
fn certificate_id(pem: &[u8]) -> Option<CertificateIdentifier<'static>> {
    let leaf = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
    CertificateIdentifier::try_from(&leaf).ok().map(CertificateIdentifier::into_owned)
}

/// Whether a reload is owed (a certificate was installed since the last successful one).
pub fn reload_pending(config: &Config) -> bool {
    Path::exists(&reload_marker(config))
}
