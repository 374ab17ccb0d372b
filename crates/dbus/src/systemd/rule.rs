//! The graced-unit rule: which unit names, and which `ExecStart=`, the helper may act on.

use crate::error::ControlError;

/// The unit name `requested` stands for, if it is one a graced unit may have.
///
/// Accepted: `graced.service`, `graced@INSTANCE.service` (the template's instances, as
/// the generator writes them) and `graced-NAME.service` (units written by `graced unit`
/// under another name). A name without `.service` gets it appended, so `graced`,
/// `graced@blog` and `graced-blog` work. The rule is only the first gate: the unit must
/// also run `graced` (see [`Systemd::unit`](super::Systemd::unit)).
pub fn graced_unit_name(requested: &str) -> Result<String, ControlError> {
    let name =
        if requested.ends_with(".service") { requested.to_owned() } else { format!("{requested}.service") };
    let stem = &name[..name.len() - ".service".len()];
    let suffix = stem.strip_prefix("graced@").or_else(|| stem.strip_prefix("graced-"));
    let valid = stem == "graced"
        || suffix.is_some_and(|s| {
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b":-_.\\".contains(&b))
        });
    if valid && name.len() <= 255 {
        Ok(name)
    } else {
        Err(ControlError::NotAGracedUnit(format!(
            "{requested:?} is not a graced unit: only graced.service, graced@INSTANCE.service and \
             graced-NAME.service may be acted on"
        )))
    }
}

/// Whether every command in a unit's `ExecStart=` runs a binary named `graced`.
pub fn runs_graced<'a>(exec_paths: impl IntoIterator<Item = &'a str>) -> bool {
    let mut any = false;
    for path in exec_paths {
        any = true;
        if std::path::Path::new(path).file_name().is_none_or(|name| name != "graced") {
            return false;
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graced_names() {
        for (requested, name) in [
            ("graced", "graced.service"),
            ("graced.service", "graced.service"),
            ("graced@blog", "graced@blog.service"),
            ("graced@blog.service", "graced@blog.service"),
            ("graced-alt", "graced-alt.service"),
            ("graced-alt.example.service", "graced-alt.example.service"),
            ("graced@x\\x2dy", "graced@x\\x2dy.service"),
        ] {
            assert_eq!(graced_unit_name(requested).unwrap(), name);
        }
    }

    #[test]
    fn other_names_are_refused() {
        for requested in [
            "dbus.service",
            "dbus",
            "graced.socket",
            "graced@.service",
            "graced-.service",
            "graced@a/b",
            "gracedx.service",
            "sshd.service",
            "",
            "graced@a b",
            "graced@a@b",
            &format!("graced-{}", "x".repeat(250)),
        ] {
            let err = graced_unit_name(requested).unwrap_err();
            assert!(matches!(err, ControlError::NotAGracedUnit(_)), "{requested:?}: {err}");
        }
    }

    #[test]
    fn exec_start_must_run_graced() {
        assert!(runs_graced(["/usr/sbin/graced"]));
        assert!(runs_graced(["/usr/local/bin/graced", "/usr/sbin/graced"]));
        assert!(!runs_graced([]));
        assert!(!runs_graced(["/usr/bin/dbus-daemon"]));
        assert!(!runs_graced(["/usr/sbin/graced-dbus"]));
        assert!(!runs_graced(["/usr/sbin/graced", "/bin/sh"]));
        assert!(!runs_graced(["/"]));
    }
}
