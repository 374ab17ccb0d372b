//! Basic-auth users from systemd credentials (`htpasswd = "credential:NAME"`), read from the
//! credentials directory the caller names — the binary reads `$CREDENTIALS_DIRECTORY` at its
//! edge; this crate never reads the environment — at start, at `graced -t` and at every
//! reload.

use std::path::Path;

use crate::diagnostic::{ConfigError, Diagnostic};
use crate::htpasswd::parse_htpasswd;
use crate::model::Config;
use crate::rules::Htpasswd;

impl Config {
    /// Reads every `credential:NAME` htpasswd from `dir`; every problem at the place the
    /// configuration names the credential.
    pub fn load_credentials(&mut self, dir: Option<&Path>) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let auths =
            self.sites.iter_mut().flat_map(|s| s.rules.access.iter_mut()).filter_map(|r| r.auth.as_mut());
        for auth in auths {
            let Htpasswd::Credential { name, at } = &auth.source else { continue };
            let loaded = match dir {
                None => Err((
                    format!(
                        "htpasswd credential {name:?}: no credentials directory ($CREDENTIALS_DIRECTORY is not set)"
                    ),
                    "run under systemd with LoadCredential=NAME:/etc/graced/htpasswd, or name the file itself",
                )),
                Some(dir) => match std::fs::read_to_string(dir.join(name)) {
                    Err(err) => Err((
                        format!("htpasswd credential {name:?} ({}): {err}", dir.join(name).display()),
                        "check the unit's LoadCredential= line for this name",
                    )),
                    Ok(text) => parse_htpasswd(&text).map_err(|(line, why)| {
                        (
                            format!("htpasswd credential {name:?}:{line}: {why}"),
                            "one `user:hash` per line, hashes by `htpasswd -B` (bcrypt) or argon2id",
                        )
                    }),
                },
            };
            match loaded {
                Ok(users) => auth.users = users,
                Err((message, hint)) => problems.push(Diagnostic {
                    file: at.file.clone(),
                    line: at.line,
                    column: at.column,
                    message,
                    hint: Some(hint.into()),
                }),
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(ConfigError::Invalid(problems)) }
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{Config, Source};

    #[test]
    fn credentials_are_read_from_the_given_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("www")).unwrap();
        let text = "[[listen]]\nname = \"http\"\naddress = \"127.0.0.1:80\"\n\n[[site]]\nroot = \"www\"\n\n\
                    [[site.access]]\npath = \"/a/**\"\nhtpasswd = \"credential:site-users\"\n";
        let path = dir.path().join("graced.toml");
        let mut config = Config::from_toml(Source::File(path), text).unwrap();
        let users = |c: &Config| c.sites[0].rules.access[0].auth.as_ref().unwrap().users.clone();
        assert!(users(&config).is_empty(), "nobody until the credential is read");
        let err = config.load_credentials(None).unwrap_err().to_string();
        assert!(
            err.contains("graced.toml:10:12: htpasswd credential \"site-users\": no credentials directory"),
            "{err}"
        );
        let creds = tempfile::tempdir().unwrap();
        let err = config.load_credentials(Some(creds.path())).unwrap_err().to_string();
        assert!(err.contains("No such file"), "{err}");
        std::fs::write(creds.path().join("site-users"), "alice:$2y$05$abcdefghijklmnopqrstuv\n").unwrap();
        config.load_credentials(Some(creds.path())).unwrap();
        assert_eq!(users(&config), [("alice".to_owned(), "$2y$05$abcdefghijklmnopqrstuv".to_owned())]);
    }
}
