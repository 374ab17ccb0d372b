//! htpasswd files: `user:hash` lines with bcrypt or argon2 hashes only. A leaf.

/// `user:hash` lines (blank lines and `#` comments skipped); only bcrypt and argon2
/// hashes, which are slow to attack: `(line, why)` for the first bad line.
pub(crate) fn parse_htpasswd(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut users = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            return Err((n + 1, "no ':' between user and hash".into()));
        };
        let strong = ["$2a$", "$2b$", "$2y$", "$argon2id$", "$argon2i$", "$argon2d$"]
            .iter()
            .any(|p| hash.starts_with(p));
        if user.is_empty() || !strong {
            return Err((
                n + 1,
                format!(
                    "user {user:?}: not a bcrypt or argon2 hash (MD5, SHA-1, crypt and plain text are refused)"
                ),
            ));
        }
        users.push((user.to_owned(), hash.to_owned()));
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htpasswd_takes_only_slow_hashes() {
        let ok = "# users\nalice:$2y$05$abcdefghijklmnopqrstuv\n\nbob:$argon2id$v=19$m=19456,t=2,p=1$x$y\n";
        assert_eq!(parse_htpasswd(ok).unwrap().len(), 2);
        assert_eq!(parse_htpasswd("a:$apr1$x$y").unwrap_err().0, 1);
        assert_eq!(parse_htpasswd("\nplain").unwrap_err().0, 2);
        assert!(parse_htpasswd("c:{SHA}abc").is_err());
    }
}
