//! [`validate_policy`]: a bus policy checked as dbus-daemon reads it, before it is written.

use roxmltree::Node;

use super::error::PolicyError;
use super::syntax::{valid_account, valid_bus_name, valid_dotted, valid_member, valid_path};
use super::xml::{self, error_at, name};

/// The elements dbus-daemon knows inside `<busconfig>` besides `<policy>`.
const OTHER_ELEMENTS: [&str; 18] = [
    "include",
    "includedir",
    "limit",
    "user",
    "type",
    "fork",
    "keep_umask",
    "listen",
    "pidfile",
    "auth",
    "servicedir",
    "standard_session_servicedirs",
    "standard_system_servicedirs",
    "servicehelper",
    "syslog",
    "allow_anonymous",
    "selinux",
    "apparmor",
];

/// Checks a bus policy file: well-formed XML (declaration, doctype, comments, elements,
/// quoted attributes, entity references), a `<busconfig>` root, and for every `<policy>`
/// the rules dbus-daemon applies — exactly one of `context` (`default`|`mandatory`),
/// `user`, `group`, `at_console`; only `<allow>`/`<deny>` inside; known attributes with
/// valid values; no rule mixing `send_*` with `receive_*`, or `own` with either.
pub fn validate_policy(text: &str) -> Result<(), PolicyError> {
    let document = xml::parse(text)?;
    let root = document.root_element();
    if name(root) != "busconfig" {
        return Err(error_at(root, format!("the root element is <{}>, not <busconfig>", name(root))));
    }
    if let Some(attribute) = root.attributes().next() {
        return Err(error_at(
            root,
            format!("<busconfig> takes no attributes (found {:?})", attribute.name()),
        ));
    }
    for child in root.children().filter(Node::is_element) {
        match name(child) {
            "policy" => check_policy(child)?,
            other if OTHER_ELEMENTS.contains(&other) => {}
            other => return Err(error_at(child, format!("unknown element <{other}> in <busconfig>"))),
        }
    }
    Ok(())
}

/// Whether `node` holds text other than whitespace (CDATA included).
fn has_text(node: Node<'_, '_>) -> bool {
    node.children().any(|child| child.is_text() && child.text().is_some_and(|t| !t.trim().is_empty()))
}

fn check_policy(policy: Node<'_, '_>) -> Result<(), PolicyError> {
    let attributes: Vec<_> = policy.attributes().collect();
    let [selector] = attributes.as_slice() else {
        return Err(error_at(
            policy,
            "<policy> needs exactly one of context=\"default|mandatory\", user=, group=, at_console=".into(),
        ));
    };
    let (kind, value) = (selector.name(), selector.value());
    match kind {
        "context" if value == "default" || value == "mandatory" => {}
        "user" | "group" if valid_account(value) || value == "*" => {}
        "at_console" if value == "true" || value == "false" => {}
        _ => {
            return Err(error_at(
                policy,
                format!("<policy {kind}={value:?}> is not a valid policy selector"),
            ));
        }
    }
    if has_text(policy) {
        return Err(error_at(policy, "<policy> contains text".into()));
    }
    for rule in policy.children().filter(Node::is_element) {
        if name(rule) != "allow" && name(rule) != "deny" {
            return Err(error_at(
                rule,
                format!("<{}> in <policy>: only <allow> and <deny> are allowed", name(rule)),
            ));
        }
        check_rule(rule)?;
    }
    Ok(())
}

fn check_rule(rule: Node<'_, '_>) -> Result<(), PolicyError> {
    let element = name(rule);
    if rule.attributes().len() == 0 {
        return Err(error_at(rule, format!("<{element}> without attributes")));
    }
    if rule.children().any(|child| child.is_element()) || has_text(rule) {
        return Err(error_at(rule, format!("<{element}> must be empty")));
    }
    let (mut send, mut receive, mut other) = (false, false, Vec::new());
    for attribute in rule.attributes() {
        let (key, value) = (attribute.name(), attribute.value());
        let ok = match key {
            "send_interface" | "receive_interface" => value == "*" || valid_dotted(value, false),
            "send_member" | "receive_member" => value == "*" || valid_member(value),
            "send_error" | "receive_error" => value == "*" || valid_dotted(value, false),
            "send_destination" | "receive_sender" | "own" => value == "*" || valid_bus_name(value),
            "send_destination_prefix" | "own_prefix" => valid_bus_name(value),
            "send_path" | "receive_path" => valid_path(value),
            "send_type" | "receive_type" => {
                matches!(value, "*" | "method_call" | "method_return" | "signal" | "error")
            }
            "send_requested_reply" | "receive_requested_reply" | "send_broadcast" | "eavesdrop" | "log" => {
                value == "true" || value == "false"
            }
            "user" | "group" => value == "*" || valid_account(value),
            "max_fds" | "min_fds" => value.parse::<u32>().is_ok(),
            _ => return Err(error_at(rule, format!("unknown attribute {key:?} on <{element}>"))),
        };
        if !ok {
            return Err(error_at(rule, format!("invalid value {value:?} for {key}")));
        }
        if key.starts_with("send_") {
            send = true;
        } else if key.starts_with("receive_") {
            receive = true;
        } else if !matches!(key, "eavesdrop" | "log" | "max_fds" | "min_fds") {
            other.push(key);
        }
    }
    if send && receive {
        return Err(error_at(rule, format!("<{element}> mixes send_* and receive_* attributes")));
    }
    if !other.is_empty() && (send || receive || other.len() > 1) {
        return Err(error_at(
            rule,
            format!("<{element}> combines {} with other attributes", other.join(", ")),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::policy::bus_policy;
    use super::*;

    #[test]
    fn the_generated_policy_is_valid() {
        validate_policy(&bus_policy("graced-admin")).unwrap();
        validate_policy(&bus_policy("wheel")).unwrap();
    }

    #[test]
    fn a_bad_group_name_makes_an_invalid_policy() {
        let err = validate_policy(&bus_policy("a b")).unwrap_err();
        assert!(err.message.contains("policy group"), "{err}");
        let err = validate_policy(&bus_policy("x\"><policy")).unwrap_err();
        assert!(err.message.contains("policy group"), "{err}");
    }

    fn error_of(xml: &str) -> PolicyError {
        validate_policy(xml).expect_err(xml)
    }

    #[test]
    fn malformed_xml_is_reported_with_its_position() {
        let err = error_of("<busconfig>\n  <policy user=\"root\">\n    <allow own=\"a.b\"/>\n</busconfig>\n");
        assert_eq!((err.line, err.column), (2, 3), "{err}");
        assert!(err.message.contains("<policy> is closed by </busconfig>"), "{err}");
        let err = error_of("<busconfig><policy user=root></policy></busconfig>");
        assert_eq!((err.line, err.column, err.message.contains("quoted")), (1, 25, true), "{err}");
        assert!(error_of("<busconfig>").message.contains("never closed"));
        assert!(error_of("<busconfig></busconfig><x/>").message.contains("after the root"));
        assert!(error_of("<busconfig><!-- a -- b --></busconfig>").message.contains("--"));
        assert!(error_of("<busconfig>&nbsp;</busconfig>").message.contains("unknown entity"));
        assert!(
            error_of("<busconfig><policy user=\"a\" user=\"b\"/></busconfig>").message.contains("duplicate")
        );
        assert!(error_of("").message.contains("root element"));
        assert!(error_of("<busconfig><policy user=\"root\"").message.contains("expected"));
        let nested = "<busconfig>\n<policy user=\"a\">\n<x>\n<allow own=\"a.b\"/>\n</policy>\n</busconfig>";
        let err = error_of(nested);
        assert_eq!((err.line, err.column), (3, 1), "{err}");
        assert!(err.message.contains("<x> is closed by </policy>"), "{err}");
        assert!(error_of("<!DOCTYPE busconfig [ <!ENTITY a 'b'> ]><busconfig/>").message.contains("DTD"));
    }

    #[test]
    fn schema_errors() {
        let cases = [
            ("<config/>", "not <busconfig>"),
            ("<busconfig><polcy/></busconfig>", "unknown element <polcy>"),
            ("<busconfig><policy/></busconfig>", "exactly one of"),
            ("<busconfig><policy user=\"root\" group=\"adm\"/></busconfig>", "exactly one of"),
            ("<busconfig><policy context=\"everyone\"/></busconfig>", "not a valid policy selector"),
            ("<busconfig><policy user=\"root\"><permit own=\"a.b\"/></policy></busconfig>", "only <allow>"),
            ("<busconfig><policy user=\"root\">x</policy></busconfig>", "contains text"),
            ("<busconfig><policy user=\"root\"><allow/></policy></busconfig>", "without attributes"),
            (
                "<busconfig><policy user=\"root\"><allow own=\"a.b\">x</allow></policy></busconfig>",
                "must be empty",
            ),
            (
                "<busconfig><policy user=\"root\"><allow owner=\"a.b\"/></policy></busconfig>",
                "unknown attribute",
            ),
            ("<busconfig><policy user=\"root\"><allow own=\"a..b\"/></policy></busconfig>", "invalid value"),
            (
                "<busconfig><policy user=\"root\"><allow send_type=\"call\"/></policy></busconfig>",
                "invalid value",
            ),
            (
                "<busconfig><policy user=\"root\"><allow send_destination=\"a.b\" receive_sender=\"a.b\"/></policy></busconfig>",
                "mixes",
            ),
            (
                "<busconfig><policy user=\"root\"><allow own=\"a.b\" send_destination=\"a.b\"/></policy></busconfig>",
                "combines",
            ),
        ];
        for (xml, expected) in cases {
            let err = error_of(xml);
            assert!(err.message.contains(expected), "{xml}: {err}");
        }
    }

    #[test]
    fn what_dbus_accepts_is_accepted() {
        validate_policy(
            "<?xml version=\"1.0\"?>\n<!DOCTYPE busconfig PUBLIC \"-//x//EN\" \"http://x/busconfig.dtd\">\n\
             <!-- c --><busconfig><policy context=\"default\"><allow send_destination=\"org.a.B\" \
             send_interface=\"org.a.B\" send_member=\"Ping\" send_path=\"/org/a\" send_type='method_call'/>\
             <deny receive_sender=\":1.2\" eavesdrop=\"true\"/><allow user=\"*\"/><allow own_prefix=\"org.a\"/>\
             </policy><policy at_console=\"true\"/><limit name=\"max_replies_per_connection\">5</limit>\
             </busconfig>\n",
        )
        .unwrap();
    }
}
