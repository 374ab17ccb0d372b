//! Path globs for the site rules (headers, redirects, access): compiled once, at load, to
//! an anchored regular expression, so a bad pattern is a `graced -t` error and matching
//! a request is one regex run. A leaf.
//!
//! Syntax: `*` any characters but `/`, `**` any characters (`/` too), `?` one character
//! but `/`, `{a,b}` one of the alternatives (not nested); everything else is literal.
//! Each `*`, `**`, `?` and `{…}` is a capture, `$1` … `$9` in a redirect's target.
//! (By hand on top of `regex` rather than `globset`: globset matches but has no captures.)

use regex::Regex;

/// A compiled glob; equal when the pattern is.
#[derive(Debug, Clone)]
pub struct Glob {
    pattern: String,
    regex: Regex,
    captures: usize,
}

impl PartialEq for Glob {
    fn eq(&self, other: &Glob) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for Glob {}

impl Glob {
    /// Compiles `pattern`, or says what is wrong with it.
    pub fn new(pattern: &str) -> Result<Glob, String> {
        if !pattern.starts_with('/') {
            return Err(format!("pattern {pattern:?} does not start with '/'"));
        }
        let mut re = String::from("^");
        let mut captures = 0;
        let mut chars = pattern.chars().peekable();
        let mut in_braces = false;
        while let Some(c) = chars.next() {
            match c {
                '*' if chars.peek() == Some(&'*') => {
                    chars.next();
                    if chars.peek() == Some(&'*') {
                        return Err(format!("pattern {pattern:?} has '***'; use '*' or '**'"));
                    }
                    re.push_str("(.*)");
                    captures += 1;
                }
                '*' => {
                    re.push_str("([^/]*)");
                    captures += 1;
                }
                '?' => {
                    re.push_str("([^/])");
                    captures += 1;
                }
                '{' if in_braces => return Err(format!("pattern {pattern:?} nests '{{'")),
                '{' => {
                    in_braces = true;
                    re.push('(');
                    captures += 1;
                }
                ',' if in_braces => re.push('|'),
                '}' if in_braces => {
                    in_braces = false;
                    re.push(')');
                }
                '}' => return Err(format!("pattern {pattern:?} has '}}' without '{{'")),
                '[' | ']' => {
                    return Err(format!(
                        "pattern {pattern:?} has '{c}': character classes are not supported"
                    ));
                }
                c => re.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
            }
        }
        if in_braces {
            return Err(format!("pattern {pattern:?} has '{{' without '}}'"));
        }
        re.push('$');
        let regex = Regex::new(&re).map_err(|e| format!("pattern {pattern:?}: {e}"))?;
        Ok(Glob { pattern: pattern.to_owned(), regex, captures })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// How many captures (`$1` …) the pattern has.
    pub fn captures(&self) -> usize {
        self.captures
    }

    /// Whether `path` matches the whole pattern.
    pub fn is_match(&self, path: &str) -> bool {
        self.regex.is_match(path)
    }

    /// The captures of `path` (`$1` first), if it matches.
    pub fn capture<'p>(&self, path: &'p str) -> Option<Vec<&'p str>> {
        let found = self.regex.captures(path)?;
        Some(found.iter().skip(1).map(|m| m.map_or("", |m| m.as_str())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn stars_questions_and_braces() {
        let g = Glob::new("/assets/*.{css,js}").unwrap();
        assert!(g.is_match("/assets/app.css"));
        assert!(g.is_match("/assets/app.js"));
        assert!(!g.is_match("/assets/sub/app.js"));
        assert!(!g.is_match("/assets/app.cssx"));
        assert_eq!(g.capture("/assets/a.b.js").unwrap(), ["a.b", "js"]);
        let g = Glob::new("/docs/**").unwrap();
        assert_eq!(g.capture("/docs/a/b?").unwrap(), ["a/b?"]);
        assert!(!g.is_match("/docs"));
        let g = Glob::new("/a.html").unwrap();
        assert!(g.is_match("/a.html") && !g.is_match("/aXhtml"));
        assert!(Glob::new("/x?").unwrap().is_match("/xy"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["relative", "/{a", "/a}", "/{a,{b}}", "/[ab]", "/***"] {
            assert!(Glob::new(bad).is_err(), "{bad}");
        }
    }
}
