//! How the units of one bundle are named and refer to each other; which names are valid.

use graced_config::Listener;

use super::options::{Kind, Options};
use crate::error::Error;

/// How the units of one bundle refer to each other.
pub(super) struct Names {
    /// `""`, `"%i"` or the instance name; with `@` in front unless plain.
    pub(super) instance: Option<String>,
    /// Unit name stems of the sockets, first listener first: `NAME`, then `NAME-LISTENER`.
    pub(super) socket_stems: Vec<String>,
    pub(super) service: String,
    pub(super) sockets: Vec<String>,
}

impl Names {
    pub(super) fn new(options: &Options, listeners: &[Listener]) -> Result<Names, Error> {
        let instance = match &options.kind {
            Kind::Plain => None,
            Kind::Template => Some("%i".to_owned()),
            Kind::Instance(name) => {
                check_instance_name(name)?;
                Some(name.clone())
            }
        };
        let mut socket_stems = Vec::new();
        for (index, listener) in listeners.iter().enumerate() {
            check_listener_name(&listener.name)?;
            if index == 0 {
                socket_stems.push(options.name.clone());
            } else {
                socket_stems.push(format!("{}-{}", options.name, listener.name));
            }
        }
        let mut names = Names { instance, socket_stems, service: String::new(), sockets: Vec::new() };
        names.service = names.reference(&options.name, "service");
        names.sockets = names.socket_stems.iter().map(|stem| names.reference(stem, "socket")).collect();
        for name in std::iter::once(&names.service).chain(&names.sockets) {
            if name.len() > 255 {
                return Err(Error::InvalidName {
                    name: name.clone(),
                    reason: "a unit name has at most 255 characters",
                });
            }
        }
        Ok(names)
    }

    /// The file name: `graced.service`, `graced@.service`, `graced@blog.service`.
    pub(super) fn file(&self, stem: &str, suffix: &str) -> String {
        match &self.instance {
            None => format!("{stem}.{suffix}"),
            Some(i) if i == "%i" => format!("{stem}@.{suffix}"),
            Some(i) => format!("{stem}@{i}.{suffix}"),
        }
    }

    /// The name other units use: `graced.socket`, `graced@%i.socket`, `graced@blog.socket`.
    pub(super) fn reference(&self, stem: &str, suffix: &str) -> String {
        match &self.instance {
            None => format!("{stem}.{suffix}"),
            Some(i) => format!("{stem}@{i}.{suffix}"),
        }
    }

    /// `graced`, `graced@%i`, `graced@blog`.
    pub(super) fn identifier(&self, stem: &str) -> String {
        match &self.instance {
            None => stem.to_owned(),
            Some(i) => format!("{stem}@{i}"),
        }
    }

    /// ` (instance blog)` for descriptions.
    pub(super) fn description_suffix(&self) -> String {
        match &self.instance {
            None => String::new(),
            Some(i) => format!(" (instance {i})"),
        }
    }
}

pub(super) fn is_unit_word(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

pub(super) fn check_unit_name(name: &str) -> Result<(), Error> {
    if is_unit_word(name) && !name.starts_with(['.', '-']) {
        Ok(())
    } else {
        Err(Error::InvalidName { name: name.to_owned(), reason: "use letters, digits, '_', '.' and '-'" })
    }
}

pub(super) fn check_instance_name(name: &str) -> Result<(), Error> {
    if is_unit_word(name) && !name.starts_with(['.', '-']) {
        Ok(())
    } else {
        Err(Error::InvalidInstance { name: name.to_owned() })
    }
}

pub(super) fn check_listener_name(name: &str) -> Result<(), Error> {
    if is_unit_word(name) { Ok(()) } else { Err(Error::ListenerName { name: name.to_owned() }) }
}
