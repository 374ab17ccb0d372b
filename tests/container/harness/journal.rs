//! `journalctl -o json` entries as flat maps of text, read with serde_json.

use std::collections::BTreeMap;

use serde_json::Value;

/// Parses one `journalctl -o json` line, `{"KEY":"value",...}`, into text values: strings
/// as they are; arrays of numbers (journald's encoding of binary or non-UTF-8 values) as
/// the bytes they are, read as UTF-8; a field journald repeats (an array of strings) as its
/// values joined by newlines; numbers, `null` and booleans as written.
pub(super) fn parse_entry(line: &str) -> Result<BTreeMap<String, String>, String> {
    let Value::Object(fields) = serde_json::from_str(line).map_err(|e| e.to_string())? else {
        return Err("not a JSON object".into());
    };
    fields.into_iter().map(|(key, value)| Ok((key, text(value)?))).collect()
}

fn text(value: Value) -> Result<String, String> {
    Ok(match value {
        Value::String(s) => s,
        Value::Array(items) if items.iter().all(Value::is_string) && !items.is_empty() => {
            items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("\n")
        }
        Value::Array(items) => {
            let bytes = items
                .iter()
                .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()).ok_or_else(|| format!("bad byte {b}")))
                .collect::<Result<Vec<u8>, String>>()?;
            String::from_utf8_lossy(&bytes).into_owned()
        }
        other => other.to_string(),
    })
}

#[test]
fn journal_lines() {
    let m =
        parse_entry(r#"{"MESSAGE":"a \"b\"\n\u00e9","N":"1","B":[104,105],"X":null,"R":["x","y"]}"#).unwrap();
    assert_eq!(m["MESSAGE"], "a \"b\"\né");
    assert_eq!(m["B"], "hi");
    assert_eq!(m["X"], "null");
    assert_eq!(m["R"], "x\ny");
}
