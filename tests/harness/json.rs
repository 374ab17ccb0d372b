//! Just enough JSON for `journalctl -o json`: one flat object per line, values strings (or byte arrays).

use std::collections::BTreeMap;

/// Parses `{"KEY":"value",...}`. Strings are unescaped; arrays of numbers (journald's
/// encoding of binary or non-UTF-8 values) become text; numbers, `null` and booleans are
/// kept as written. A field journald repeats (an array of strings) keeps its values joined
/// by newlines.
pub fn parse_flat_object(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut p = Parser { s: text.as_bytes(), i: 0 };
    let mut map = BTreeMap::new();
    p.ws();
    p.expect(b'{')?;
    p.ws();
    if p.peek() == Some(b'}') {
        return Ok(map);
    }
    loop {
        p.ws();
        let key = p.string()?;
        p.ws();
        p.expect(b':')?;
        p.ws();
        let value = p.value()?;
        map.insert(key, value);
        p.ws();
        match p.next() {
            Some(b',') => continue,
            Some(b'}') => return Ok(map),
            other => return Err(format!("expected , or }} at {}, found {:?}", p.i, other.map(char::from))),
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek();
        self.i += 1;
        c
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        match self.next() {
            Some(x) if x == c => Ok(()),
            other => Err(format!(
                "expected {:?} at {}, found {:?}",
                char::from(c),
                self.i - 1,
                other.map(char::from)
            )),
        }
    }

    fn value(&mut self) -> Result<String, String> {
        match self.peek() {
            Some(b'"') => self.string(),
            Some(b'[') => {
                self.i += 1;
                let mut bytes = Vec::new();
                let mut strings = Vec::new();
                loop {
                    self.ws();
                    match self.peek() {
                        Some(b']') => {
                            self.i += 1;
                            break;
                        }
                        Some(b',') => self.i += 1,
                        Some(b'"') => strings.push(self.string()?),
                        _ => {
                            let n = self.scalar();
                            bytes.push(n.parse::<u8>().map_err(|_| format!("bad byte {n:?} at {}", self.i))?);
                        }
                    }
                }
                if strings.is_empty() {
                    Ok(String::from_utf8_lossy(&bytes).into_owned())
                } else {
                    Ok(strings.join("\n"))
                }
            }
            Some(_) => Ok(self.scalar()),
            None => Err("unexpected end".into()),
        }
    }

    fn scalar(&mut self) -> String {
        let start = self.i;
        while matches!(self.peek(), Some(c) if !matches!(c, b',' | b'}' | b']' | b' ')) {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out: Vec<u8> = Vec::new();
        loop {
            match self.next() {
                None => return Err("unterminated string".into()),
                Some(b'"') => break,
                Some(b'\\') => match self.next() {
                    Some(b'n') => out.push(b'\n'),
                    Some(b't') => out.push(b'\t'),
                    Some(b'r') => out.push(b'\r'),
                    Some(b'b') => out.push(8),
                    Some(b'f') => out.push(12),
                    Some(b'u') => {
                        let hex = self.s.get(self.i..self.i + 4).ok_or("short \\u escape")?;
                        self.i += 4;
                        let code =
                            u32::from_str_radix(std::str::from_utf8(hex).map_err(|e| e.to_string())?, 16)
                                .map_err(|e| e.to_string())?;
                        let c = char::from_u32(code).unwrap_or('\u{fffd}');
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    Some(c) => out.push(c),
                    None => return Err("unterminated escape".into()),
                },
                Some(c) => out.push(c),
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_lines() {
        let m = parse_flat_object(
            r#"{"MESSAGE":"a \"b\"\n\u00e9","N":"1","B":[104,105],"X":null,"R":["x","y"]}"#,
        )
        .unwrap();
        assert_eq!(m["MESSAGE"], "a \"b\"\né");
        assert_eq!(m["B"], "hi");
        assert_eq!(m["X"], "null");
        assert_eq!(m["R"], "x\ny");
    }
}
