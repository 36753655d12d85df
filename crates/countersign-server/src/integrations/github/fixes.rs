//! The findings a pull request says it fixes, read from its description the way GitHub reads
//! closing keywords: `Fixes F-12`, `closes: F-3, F-4`, `Resolved F-7`. A keyword (fix,
//! fixes, fixed, close, closes, closed, resolve, resolves, resolved; any case; a word of its
//! own) is followed by an optional `:` and one or more finding ids (`F-<number>`, any case)
//! separated by commas or spaces; the list ends at the first word that is not an id.
//!
//! Only the reading: whether each id names a live finding of the repository is
//! `findings::to_fix`'s to say, and what linking does is `pulls`'.

use crate::findings::MAX_FIXES;

/// GitHub's closing keywords.
const KEYWORDS: [&str; 9] = [
    "fix", "fixes", "fixed", "close", "closes", "closed", "resolve", "resolves", "resolved",
];

/// Whether `c` continues a word: what may not touch a keyword or an id.
fn wordy(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// The finding ids `text` says it fixes, once each, in order of first mention, as written
/// but for the `F` (upper case). At most one more than [`MAX_FIXES`], so that too many is
/// refused rather than cut.
pub(crate) fn linked(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let before = text[..text.len() - rest.len()].chars().next_back();
        if !c.is_alphabetic() || before.is_some_and(wordy) {
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let end = rest.find(|c: char| !wordy(c)).unwrap_or(rest.len());
        let word = &rest[..end];
        rest = &rest[end..];
        if KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word)) {
            rest = ids(rest, &mut out);
            if out.len() > MAX_FIXES {
                out.truncate(MAX_FIXES + 1);
                return out;
            }
        }
    }
    out
}

/// Reads the list after a keyword into `out`; returns what follows it.
fn ids<'t>(text: &'t str, out: &mut Vec<String>) -> &'t str {
    let mut rest = text.trim_start();
    if let Some(after) = rest.strip_prefix(':') {
        rest = after.trim_start();
    }
    let mut first = true;
    loop {
        let mut next = rest;
        if !first {
            next = next.trim_start();
            if let Some(after) = next.strip_prefix(',') {
                next = after.trim_start();
            }
        }
        let Some(digits) = next.strip_prefix("F-").or_else(|| next.strip_prefix("f-")) else {
            return rest;
        };
        let end = digits
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        // `F-12x` and `F-` are no ids: the list ends before them.
        if end == 0 || digits[end..].chars().next().is_some_and(wordy) {
            return rest;
        }
        let id = format!("F-{}", &digits[..end]);
        if !out.contains(&id) {
            out.push(id);
        }
        rest = &digits[end..];
        first = false;
    }
}

#[cfg(test)]
mod tests {
    use super::linked;

    fn check(text: &str, expect: &[&str]) {
        assert_eq!(linked(text), expect, "{text:?}");
    }

    #[test]
    fn keywords_and_lists() {
        check("Fixes F-12", &["F-12"]);
        check("fixes: F-12, F-13", &["F-12", "F-13"]);
        check(
            "This change\n\nCloses F-1 F-2,F-3.\nRESOLVED f-4",
            &["F-1", "F-2", "F-3", "F-4"],
        );
        check("fix F-2; resolve F-2 and fixed F-9", &["F-2", "F-9"]);
        check("(fixes F-5)", &["F-5"]);
        check("- [x] closes:F-6", &["F-6"]);
        check("fixes fixes F-7", &["F-7"]);
    }

    #[test]
    fn what_is_no_link() {
        check("", &[]);
        check("F-12 is fixed", &[]);
        check("prefixes F-1, unfixed F-2, fixes-F-3, fix_ F-4", &[]);
        check("fixes #12", &[]);
        check("fixes F-12x, F-1", &[]);
        check("fixes F-, F-1", &[]);
        check("fixes F-1 and F-2", &["F-1"]);
        check("fixes F-1, #2, F-3", &["F-1"]);
        check("fixé F-1", &[]);
    }

    #[test]
    fn too_many_is_kept_too_many() {
        let text: Vec<String> = (1..=200).map(|n| format!("fixes F-{n}")).collect();
        assert_eq!(linked(&text.join("\n")).len(), super::MAX_FIXES + 1);
    }
}
