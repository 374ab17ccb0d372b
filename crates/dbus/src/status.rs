//! Reads the server's `STATUS=` text (systemd's `StatusText` property) back into values.
//!
//! The texts are the ones `lifecycle` sends; this is the only place that knows their shape:
//!
//! * `generation N; C connections; R requests served[; G7 finishing 2…][; reloaded]`
//! * `reload failed, still serving generation N: FILE:LINE:COL: message` (also `restart failed`)
//! * `reload: rereading FILE` (also `restart:`)
//! * `graceful stop: draining N connections`
//! * `draining: N connections left, Ss to forced close`
//! * `graceful stop complete; K connections aborted`

/// What a StatusText says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerStatus {
    /// Serving generation `generation`.
    Serving { generation: u64, connections: u64, requests: u64 },
    /// A reload (or restart) was rejected; `generation` keeps serving.
    ReloadFailed { generation: u64, error: String },
    /// A reload or restart is being prepared.
    Reloading,
    /// A graceful stop is letting requests finish.
    Draining { connections: u64, seconds_left: Option<u64> },
    /// The graceful stop is over; `aborted` connections had to be cut.
    Stopped { aborted: u64 },
    /// Anything else (another program's text, `stopping`, empty).
    Other,
}

impl ServerStatus {
    /// The generation the text names, if any.
    pub fn generation(&self) -> Option<u64> {
        match self {
            ServerStatus::Serving { generation, .. } | ServerStatus::ReloadFailed { generation, .. } => {
                Some(*generation)
            }
            _ => None,
        }
    }
}

/// Parses a StatusText; texts of an unknown shape are [`ServerStatus::Other`].
pub fn parse(text: &str) -> ServerStatus {
    let text = text.trim();
    if let Some(status) = serving(text) {
        return status;
    }
    for what in ["reload", "restart"] {
        if let Some(rest) = text.strip_prefix(what) {
            if let Some(rest) = rest.strip_prefix(" failed, still serving generation ")
                && let Some((generation, error)) = rest.split_once(": ")
                && let Ok(generation) = generation.parse()
            {
                return ServerStatus::ReloadFailed { generation, error: error.to_owned() };
            }
            if rest.starts_with(": rereading ") {
                return ServerStatus::Reloading;
            }
        }
    }
    if let Some(rest) = text.strip_prefix("graceful stop: draining ")
        && let Some(n) = rest.strip_suffix(" connections")
        && let Ok(connections) = n.parse()
    {
        return ServerStatus::Draining { connections, seconds_left: None };
    }
    if let Some(rest) = text.strip_prefix("draining: ")
        && let Some((n, rest)) = rest.split_once(" connections left, ")
        && let Some(s) = rest.strip_suffix("s to forced close")
        && let (Ok(connections), Ok(seconds)) = (n.parse(), s.parse())
    {
        return ServerStatus::Draining { connections, seconds_left: Some(seconds) };
    }
    if let Some(rest) = text.strip_prefix("graceful stop complete; ")
        && let Some(n) = rest.strip_suffix(" connections aborted")
        && let Ok(aborted) = n.parse()
    {
        return ServerStatus::Stopped { aborted };
    }
    ServerStatus::Other
}

/// `generation N; C connections; R requests served` followed by optional `; …` parts.
fn serving(text: &str) -> Option<ServerStatus> {
    let mut parts = text.split("; ");
    let generation = parts.next()?.strip_prefix("generation ")?.parse().ok()?;
    let connections = parts.next()?.strip_suffix(" connections")?.parse().ok()?;
    let requests = parts.next()?.strip_suffix(" requests served")?.parse().ok()?;
    Some(ServerStatus::Serving { generation, connections, requests })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_the_server_sends() {
        assert_eq!(
            parse("generation 3; 2 connections; 41 requests served"),
            ServerStatus::Serving { generation: 3, connections: 2, requests: 41 }
        );
        assert_eq!(
            parse("generation 4; 0 connections; 7 requests served; G3 finishing 1; reloaded"),
            ServerStatus::Serving { generation: 4, connections: 0, requests: 7 }
        );
        assert_eq!(
            parse(
                "reload failed, still serving generation 2: /etc/graced/graced.toml:3:1: unknown field `lisen`"
            ),
            ServerStatus::ReloadFailed {
                generation: 2,
                error: "/etc/graced/graced.toml:3:1: unknown field `lisen`".into()
            }
        );
        assert_eq!(parse("restart failed, still serving generation 1: x: y").generation(), Some(1));
        assert_eq!(parse("reload: rereading /etc/graced/graced.toml"), ServerStatus::Reloading);
        assert_eq!(
            parse("graceful stop: draining 5 connections"),
            ServerStatus::Draining { connections: 5, seconds_left: None }
        );
        assert_eq!(
            parse("draining: 1 connections left, 29s to forced close"),
            ServerStatus::Draining { connections: 1, seconds_left: Some(29) }
        );
        assert_eq!(
            parse("graceful stop complete; 3 connections aborted"),
            ServerStatus::Stopped { aborted: 3 }
        );
    }

    #[test]
    fn unknown_texts() {
        for text in
            ["", "stopping", "generation x; 1 connections; 1 requests served", "Started nginx", "reload"]
        {
            assert_eq!(parse(text), ServerStatus::Other, "{text:?}");
        }
    }
}
