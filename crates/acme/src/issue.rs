//! One ACME order with instant-acme: the account (stored, or created once per CA), an
//! order for the site's hosts, HTTP-01 answers written where graced serves them, the
//! CSR and key (rcgen, through instant-acme's `finalize`), the chain.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use graced_config::SiteAcme;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier,
    NewAccount, NewOrder, OrderStatus, RetryPolicy,
};

use crate::error::AcmeError;
use crate::store::{self, PRIVATE, PUBLIC};

/// A new certificate chain and its key, as the CA sent them (not yet checked).
pub(crate) struct Issued {
    pub(crate) chain: String,
    pub(crate) key: String,
}

/// How long to wait for the CA to validate and then to sign: a slow CA is a failed run,
/// retried with back-off, never a hung unit.
const POLL: RetryPolicy = RetryPolicy::new().timeout(Duration::from_secs(90));

/// The account for `acme`'s CA: the one stored under `state`, else a new one (stored).
pub(crate) async fn account(acme: &SiteAcme, state: &Path, site: &str) -> Result<Account, AcmeError> {
    let ca = |source| AcmeError::Ca {
        site: site.to_owned(),
        directory: acme.directory.clone(),
        source: Box::new(source),
    };
    let builder = || match &acme.directory_ca {
        Some(roots) => Account::builder_with_root(roots).map_err(ca),
        None => Account::builder().map_err(ca),
    };
    let path = account_path(state, &acme.directory);
    if let Some(bytes) = store::read_optional(&path)? {
        let credentials: AccountCredentials = serde_json::from_slice(&bytes)
            .map_err(|e| AcmeError::State { path: path.clone(), detail: e.to_string() })?;
        return builder()?.from_credentials(credentials).await.map_err(ca);
    }
    let contact: Vec<&str> = acme.contact.iter().map(String::as_str).collect();
    let new = NewAccount { contact: &contact, terms_of_service_agreed: true, only_return_existing: false };
    let (account, credentials) = builder()?.create(&new, acme.directory.clone(), None).await.map_err(ca)?;
    let json = serde_json::to_vec(&credentials)
        .map_err(|e| AcmeError::State { path: path.clone(), detail: e.to_string() })?;
    store::write_atomic(&path, &json, PRIVATE)?;
    Ok(account)
}

/// Orders a certificate for `hosts`, answering HTTP-01 from `challenges`; `replaces`: the
/// serving certificate (ARI's `replaces`, only sent when the CA offers ARI).
pub(crate) async fn order(
    account: &Account,
    acme: &SiteAcme,
    hosts: &[String],
    challenges: &Path,
    replaces: Option<CertificateIdentifier<'static>>,
) -> Result<Issued, AcmeError> {
    let site = hosts.first().cloned().unwrap_or_default();
    let ca = |source| AcmeError::Ca {
        site: site.clone(),
        directory: acme.directory.clone(),
        source: Box::new(source),
    };
    let failed = |detail: String| AcmeError::Order { site: site.clone(), detail };
    let identifiers: Vec<Identifier> = hosts.iter().map(|h| Identifier::Dns(h.clone())).collect();
    let mut new = NewOrder::new(&identifiers);
    if let Some(profile) = &acme.profile {
        new = new.profile(profile);
    }
    if let Some(replaces) = replaces {
        new = new.replaces(replaces);
    }
    let mut order = account.new_order(&new).await.map_err(ca)?;
    let mut answers = Answers { files: Vec::new() };
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization.map_err(ca)?;
        match authorization.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(failed(format!("an authorization is {other:?}"))),
        }
        let mut challenge = authorization
            .challenge(ChallengeType::Http01)
            .ok_or_else(|| failed("the CA offers no http-01 challenge".into()))?;
        let path = challenges.join(&challenge.token);
        fs::create_dir_all(challenges).map_err(AcmeError::io(challenges))?;
        store::write_atomic(&path, challenge.key_authorization().as_str().as_bytes(), PUBLIC)?;
        answers.files.push(path);
        challenge.set_ready().await.map_err(ca)?;
    }
    let status = order.poll_ready(&POLL).await.map_err(ca)?;
    if status != OrderStatus::Ready {
        let why = order.state().error.as_ref().map(|p| p.to_string()).unwrap_or_default();
        return Err(failed(format!("the order is {status:?}, not ready {why}")));
    }
    let key = order.finalize().await.map_err(ca)?;
    let chain = order.poll_certificate(&POLL).await.map_err(ca)?;
    Ok(Issued { chain, key })
}

/// Where the account for the CA at `directory` is kept (one per CA URL).
fn account_path(state: &Path, directory: &str) -> PathBuf {
    let name: String = directory.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    state.join("accounts").join(format!("{name}.json"))
}

/// The challenge files written for one order: removed when the order ends, however it ends.
struct Answers {
    files: Vec<PathBuf>,
}

impl Drop for Answers {
    fn drop(&mut self) {
        for file in &self.files {
            let _ = fs::remove_file(file);
        }
    }
}
