//! Reading a policy file as XML (roxmltree), with errors that name line:column and what to do.

use roxmltree::{Document, Error, Node, ParsingOptions, TextPos};

use super::error::PolicyError;

/// Parses `text` as one XML document. A DOCTYPE with an external identifier (as every
/// dbus-daemon configuration file has) is accepted; an internal DTD subset is refused.
pub(super) fn parse(text: &str) -> Result<Document<'_>, PolicyError> {
    let document = Document::parse_with_options(text, options()).map_err(|err| syntax_error(text, &err))?;
    let prolog = &text[..document.root_element().range().start];
    if let Some(doctype) = prolog.find("<!DOCTYPE") {
        let rest = &prolog[doctype..];
        if rest.find('[').is_some_and(|open| rest.find('>').is_none_or(|close| open < close)) {
            let (line, column) = line_column(text, doctype);
            return Err(PolicyError {
                line,
                column,
                message: "internal DTD subsets are not supported: keep only the DOCTYPE's public identifier"
                    .into(),
            });
        }
    }
    Ok(document)
}

fn options<'a>() -> ParsingOptions<'a> {
    ParsingOptions { allow_dtd: true, ..ParsingOptions::default() }
}

/// An error located at `node`'s start.
pub(super) fn error_at(node: Node<'_, '_>, message: String) -> PolicyError {
    let TextPos { row, col } = node.document().text_pos_at(node.range().start);
    PolicyError { line: row as usize, column: col as usize, message }
}

/// The element's name, as written in messages.
pub(super) fn name<'a>(node: Node<'a, '_>) -> &'a str {
    node.tag_name().name()
}

/// A malformed document: where, what, and what to do.
fn syntax_error(text: &str, err: &Error) -> PolicyError {
    let at_end = || line_column(text, text.len());
    let (line, column) = match err {
        Error::NoRootNode | Error::UnclosedRootNode | Error::UnexpectedEndOfStream => at_end(),
        // roxmltree points at the close tag; the mistake is the element left open.
        Error::UnexpectedCloseTag(open, _, pos) => {
            match unclosed_element(text, open, offset_of(text, *pos)) {
                Some(start) => line_column(text, start),
                None => (pos.row as usize, pos.col as usize),
            }
        }
        other => {
            let TextPos { row, col } = other.pos();
            (row as usize, col as usize)
        }
    };
    let message = match err {
        Error::NoRootNode => "expected the root element <busconfig>".to_owned(),
        Error::UnclosedRootNode | Error::UnexpectedEndOfStream => {
            "the document ends here, but an element is never closed: expected its closing tag".to_owned()
        }
        Error::UnexpectedCloseTag(open, close, _) => {
            format!("<{open}> is closed by </{close}>: close <{open}> first, or write it as <{open} …/>")
        }
        Error::InvalidChar2("a quote", _, _) => {
            "attribute values must be quoted: write name=\"value\"".to_owned()
        }
        Error::InvalidChar(_, b'<', _) | Error::InvalidAttributeValue(_) => {
            "\"<\" in an attribute value: write it as &lt;".to_owned()
        }
        Error::InvalidChar(expected, found, _) => {
            format!("expected {:?}, found {:?}", char::from(*expected), char::from(*found))
        }
        Error::InvalidChar2(expected, found, _) => {
            format!("expected {expected}, found {:?}", char::from(*found))
        }
        Error::UnknownToken(_) => {
            "unexpected markup: only comments may come after the root element, and tags start with a name"
                .to_owned()
        }
        Error::InvalidComment(_) => "\"--\" inside a comment: remove it or write \"- -\"".to_owned(),
        Error::UnknownEntityReference(entity, _) => {
            format!("unknown entity &{entity};: write a literal & as &amp;")
        }
        Error::MalformedEntityReference(_) => {
            "malformed entity reference: write a literal & as &amp;".to_owned()
        }
        Error::DuplicatedAttribute(attribute, _) => {
            format!("duplicate attribute {attribute}: give each attribute once")
        }
        Error::InvalidName(_) => {
            "expected a name (a letter or '_', then letters, digits, '_', '-', '.')".to_owned()
        }
        Error::UnknownNamespace(prefix, _) => {
            format!("unknown namespace prefix {prefix:?}: policy files use no namespaces")
        }
        other => {
            let text = other.to_string();
            let position = format!(" at {}", other.pos());
            text.replace(&position, "")
        }
    };
    PolicyError { line, column, message }
}

/// Where the element `open` that a wrong close tag at byte `at` left open starts: the
/// document is parsed again with `</open>` inserted there (and so on for each further
/// element left open); the element that the first inserted tag closes is the one.
fn unclosed_element(text: &str, open: &str, at: usize) -> Option<usize> {
    let mut patched = text.to_owned();
    let mut close = format!("</{open}>");
    let mut insert_at = at;
    let end = at + close.len();
    for _ in 0..64 {
        patched.insert_str(insert_at, &close);
        match Document::parse_with_options(&patched, options()) {
            Ok(document) => {
                return document
                    .descendants()
                    .find(|node| node.is_element() && node.range().end == end)
                    .map(|node| node.range().start);
            }
            Err(Error::UnexpectedCloseTag(next, _, pos)) => {
                close = format!("</{next}>");
                insert_at = offset_of(&patched, pos);
            }
            Err(_) => return None,
        }
    }
    None
}

/// The byte offset of a 1-based line and column (in characters).
fn offset_of(text: &str, TextPos { row, col }: TextPos) -> usize {
    let line_start: usize = text.split_inclusive('\n').take(row as usize - 1).map(str::len).sum();
    let line = &text[line_start..];
    line_start + line.char_indices().nth(col as usize - 1).map_or(line.len(), |(i, _)| i)
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.chars().count(), |i| before[i + 1..].chars().count()) + 1;
    (line, column)
}
