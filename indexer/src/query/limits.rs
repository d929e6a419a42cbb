//! How deep a query nests, read before any parser sees it.
//!
//! tantivy's query grammar is recursive descent: each `(` (a group, or a field's group
//! `region:(a b)`) and each `NOT ` costs several stack frames, in its strict parser and in
//! the lenient one that locates syntax errors, and so do the passes over the tree that
//! follow (tantivy's and this crate's). A few thousand levels overflow a 2 MiB thread
//! stack, which aborts the whole process, so depth is bounded before parsing, in one
//! linear pass that allocates only for the groups it has open.
//!
//! Two bounds, because the first has to guess what the grammar will make of quotes:
//!
//! - the nesting depth, as a person reads it (parentheses and `NOT`s inside quoted phrases
//!   and escaped with `\` do not count), is at most [`MAX_DEPTH`];
//! - the openings of any kind (every `(` and every `NOT` followed by a space, quoted,
//!   escaped or not) are at most [`MAX_OPENINGS`]. The grammar can recurse at most once
//!   per opening, so this bound holds whatever it makes of a stray quote or backslash
//!   (inside a range, say), and `tests/hostile.rs` runs queries at it on a 2 MiB stack.

/// The deepest a query may nest, in groups and `NOT`s.
pub const MAX_DEPTH: usize = 32;

/// The most `(` and `NOT ` a query may hold, wherever they are.
pub const MAX_OPENINGS: usize = 256;

/// What the scan found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// The deepest nesting of groups and `NOT`s outside quotes and escapes.
    pub depth: usize,
    /// Every `(` and every `NOT` followed by whitespace, wherever it is.
    pub openings: usize,
}

/// Reads `q` once: its nesting depth and its openings (see the module's comment).
pub fn shape(q: &str) -> Shape {
    let bytes = q.as_bytes();
    // How much each open group added to `depth`: one, plus the `NOT`s right before it
    // (`NOT NOT (a)` nests three levels, closed by one `)`).
    let mut open: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut openings = 0usize;
    // `NOT`s read since the last term or group: they nest what comes next.
    let mut pending_nots = 0usize;
    let mut quote: Option<u8> = None;
    // Whether a term may start here: a quote opens a phrase only there (`don't` is a word).
    let mut term_start = true;
    // The byte before was a backslash: this one is taken as it is.
    let mut escaped = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        // Openings are counted blind to quotes and escapes: that is what makes them a bound.
        if b == b'(' || is_not_keyword(bytes, i) {
            openings += 1;
        }
        if std::mem::take(&mut escaped) {
            i += 1;
            continue;
        }
        if let Some(delimiter) = quote {
            if b == b'\\' {
                escaped = true;
            } else if b == delimiter {
                quote = None;
                term_start = false;
            }
            i += 1;
            continue;
        }
        match b {
            b'\\' => {
                deepest = deepest.max(depth + pending_nots);
                pending_nots = 0;
                term_start = false;
                escaped = true;
            }
            b'(' => {
                let added = 1 + pending_nots;
                pending_nots = 0;
                open.push(added);
                depth += added;
                deepest = deepest.max(depth);
                term_start = true;
            }
            b')' => {
                depth -= open.pop().unwrap_or(0);
                pending_nots = 0;
                term_start = false;
            }
            b'"' | b'\'' if term_start => {
                deepest = deepest.max(depth + pending_nots);
                pending_nots = 0;
                quote = Some(b);
            }
            b'N' if term_start && is_not_keyword(bytes, i) => {
                pending_nots += 1;
                // Past `NOT`; the whitespace after it starts the next term.
                i += 3;
                continue;
            }
            // `+` and `-` are operators before a term only; inside a word they are letters.
            b'+' | b'-' if term_start => {}
            b if b.is_ascii_whitespace() || b == b':' => term_start = true,
            _ => {
                deepest = deepest.max(depth + pending_nots);
                pending_nots = 0;
                term_start = false;
            }
        }
        i += 1;
    }
    // A trailing `NOT NOT NOT` still recurses while the parser looks for its operand.
    Shape {
        depth: deepest.max(depth + pending_nots),
        openings,
    }
}

/// `NOT` followed by whitespace at `i`, not inside a longer word (`KNOT `): the grammar's
/// unary operator. Whether a term may start there is the caller's business.
fn is_not_keyword(bytes: &[u8], i: usize) -> bool {
    bytes[i..].starts_with(b"NOT")
        && bytes.get(i + 3).is_some_and(u8::is_ascii_whitespace)
        && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(q: &str) -> usize {
        shape(q).depth
    }

    #[test]
    fn groups_and_nots_nest() {
        assert_eq!(depth(""), 0);
        assert_eq!(depth("a b c"), 0);
        assert_eq!(depth("(a)"), 1);
        assert_eq!(depth("((a)) (b)"), 2);
        assert_eq!(depth("region:(Dakar OR Matam)"), 1);
        assert_eq!(depth("NOT a"), 1);
        assert_eq!(depth("NOT NOT NOT a"), 3);
        assert_eq!(depth("NOT (NOT (a))"), 4);
        // Side by side, NOTs do not add up.
        assert_eq!(depth("NOT a AND NOT b AND NOT c"), 1);
        assert_eq!(depth("a AND (NOT b) AND NOT (c)"), 2);
        assert_eq!(depth(&"+(".repeat(5000)), 5000);
        assert_eq!(depth(&format!("{}a{}", "(".repeat(40), ")".repeat(40))), 40);
        // A trailing run of NOTs recurses too.
        assert_eq!(depth(&"NOT ".repeat(50)), 50);
    }

    #[test]
    fn quotes_and_escapes_do_not_nest() {
        assert_eq!(depth(r#""((((""#), 0);
        assert_eq!(depth(r#"message:"a ( b" AND (c)"#), 1);
        assert_eq!(depth(r#"'NOT NOT (x' y"#), 0);
        assert_eq!(depth(r"\(\(\( a"), 0);
        assert_eq!(depth(r#""a \" ((" (b)"#), 1);
        // A quote inside a word opens no phrase: the parentheses after it are groups.
        assert_eq!(depth("don't ((a))"), 2);
        assert_eq!(depth("KNOT a"), 0);
    }

    #[test]
    fn openings_count_everything() {
        assert_eq!(shape(r#""((((""#).openings, 4);
        assert_eq!(shape(r"\( NOT a NOT(b)").openings, 3);
        assert_eq!(shape("NOTE KNOT a").openings, 0);
    }
}
