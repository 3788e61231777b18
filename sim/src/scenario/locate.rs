//! Finding where a JSON path sits in a file, for errors found after parsing.
//!
//! Range and type errors come from the parser with a position. Errors that relate several
//! fields (a workload naming a device that does not exist, a sweep value that breaks a
//! range) are found on the parsed value; this module walks the original text, already known
//! to be valid JSON, to find the line and column of the value at a path.

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

/// 1-based line and column of the value at `path` in valid JSON `text`, if it exists.
pub fn locate(text: &str, path: &[Step]) -> Option<(usize, usize)> {
    value_offset(text.as_bytes(), path).map(|pos| line_col(text, pos))
}

/// 1-based line and column of the key of the member at `path` (whose last step is a key).
pub fn locate_key(text: &str, path: &[Step]) -> Option<(usize, usize)> {
    let (Step::Key(want), parent) = path.split_last()? else {
        return None;
    };
    let b = text.as_bytes();
    let open = value_offset(b, parent)?;
    find_member(b, open, want).map(|m| line_col(text, m.key_at))
}

/// The keys of the object at `path`, in document order, with their positions.
pub fn keys_at(text: &str, path: &[Step]) -> Vec<(String, (usize, usize))> {
    let b = text.as_bytes();
    value_offset(b, path)
        .and_then(|open| members(b, open))
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.key, line_col(text, m.key_at)))
        .collect()
}

fn value_offset(bytes: &[u8], path: &[Step]) -> Option<usize> {
    let mut pos = skip_ws(bytes, 0);
    for step in path {
        pos = match (bytes.get(pos)?, step) {
            (b'{', Step::Key(want)) => find_member(bytes, pos, want)?.value_at,
            (b'[', Step::Index(want)) => find_element(bytes, pos, *want)?,
            _ => return None,
        };
    }
    Some(pos)
}

/// 1-based line and column of byte offset `pos` (columns count characters).
pub fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..pos.min(text.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let col = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
    (line, col)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The offset just past the value starting at `i`.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => skip_string(b, i),
        open @ (b'{' | b'[') => {
            let close = if open == b'{' { b'}' } else { b']' };
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match *b.get(j)? {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    c if c == open => depth += 1,
                    c if c == close => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']') && !b[j].is_ascii_whitespace()
            {
                j += 1;
            }
            Some(j)
        }
    }
}

fn skip_string(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    loop {
        match *b.get(j)? {
            b'\\' => j += 2,
            b'"' => return Some(j + 1),
            _ => j += 1,
        }
    }
}

/// One member of an object: its key and where the key and the value start.
struct Member {
    key: String,
    key_at: usize,
    value_at: usize,
}

/// The members of the object opening at `open`, in document order, up to and including the
/// first whose key is `stop` (all of them if `stop` is `None`). The text after that member
/// is not looked at, so it may be invalid — the parser stops at the first error.
fn scan_members(b: &[u8], open: usize, stop: Option<&str>) -> Option<Vec<Member>> {
    let mut out = Vec::new();
    let mut i = skip_ws(b, open + 1);
    while *b.get(i)? == b'"' {
        let end = skip_string(b, i)?;
        let key: String = serde_json::from_slice(&b[i..end]).ok()?;
        let key_at = i;
        i = skip_ws(b, end);
        if *b.get(i)? != b':' {
            return None;
        }
        i = skip_ws(b, i + 1);
        let found = stop == Some(key.as_str());
        out.push(Member {
            key,
            key_at,
            value_at: i,
        });
        if found {
            break;
        }
        i = skip_ws(b, skip_value(b, i)?);
        if *b.get(i)? == b',' {
            i = skip_ws(b, i + 1);
        }
    }
    Some(out)
}

fn members(b: &[u8], open: usize) -> Option<Vec<Member>> {
    scan_members(b, open, None)
}

fn find_member(b: &[u8], open: usize, want: &str) -> Option<Member> {
    scan_members(b, open, Some(want))?
        .pop()
        .filter(|m| m.key == want)
}

fn find_element(b: &[u8], open: usize, want: usize) -> Option<usize> {
    let mut i = skip_ws(b, open + 1);
    for _ in 0..want {
        if *b.get(i)? == b']' {
            return None;
        }
        i = skip_ws(b, skip_value(b, i)?);
        if *b.get(i)? != b',' {
            return None;
        }
        i = skip_ws(b, i + 1);
    }
    (*b.get(i)? != b']').then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Step {
        Step::Key(k.to_owned())
    }

    const DOC: &str = r#"{
  "name": "x \" } ]",
  "devices": [
    {"name": "a"},
    {"name": "b", "bdf": "01:00.0"}
  ],
  "nested": {"deep": {"v": [1, [2, 3], {"w": true}]}}
}"#;

    #[test]
    fn finds_members_elements_and_nested_values() {
        assert_eq!(locate(DOC, &[]), Some((1, 1)));
        assert_eq!(locate(DOC, &[key("name")]), Some((2, 11)));
        assert_eq!(
            locate(DOC, &[key("devices"), Step::Index(1), key("bdf")]),
            Some((5, 26))
        );
        let w = [
            key("nested"),
            key("deep"),
            key("v"),
            Step::Index(2),
            key("w"),
        ];
        assert_eq!(locate(DOC, &w), Some((7, 46))); // the `t` of `true`
    }

    #[test]
    fn keys_are_found_in_document_order() {
        let keys = keys_at(DOC, &[key("devices"), Step::Index(1)]);
        let names: Vec<_> = keys.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["name", "bdf"]);
        assert_eq!(keys[1].1, (5, 19));
        assert_eq!(
            locate_key(DOC, &[key("devices"), Step::Index(1), key("bdf")]),
            Some((5, 19))
        );
    }

    #[test]
    fn missing_paths_give_none() {
        assert_eq!(locate(DOC, &[key("nope")]), None);
        assert_eq!(locate(DOC, &[key("devices"), Step::Index(2)]), None);
        assert_eq!(locate(DOC, &[key("name"), key("x")]), None);
    }
}
