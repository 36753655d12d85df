//! Arithmetic on repository-relative paths and the one way globs are compiled.
//!
//! Paths are `/`-separated, relative to the repository root, with no leading `/`; the root
//! directory is `""`. Nothing here touches a file system: `..` is resolved textually and a
//! path that climbs above the root is refused.

use globset::{Glob, GlobBuilder};

/// The directory of a file (`"a/b/c.yaml"` → `"a/b"`, `"c.yaml"` → `""`).
pub fn dir_of(path: &str) -> &str {
    path.rfind('/').map_or("", |i| &path[..i])
}

/// Joins `rel` onto `dir`, resolving `.` and `..`. `None` when the result leaves the
/// repository. A trailing `/` is kept, because globs give it meaning.
pub fn join(dir: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    let mut out = parts.join("/");
    if rel.ends_with('/') && !out.is_empty() {
        out.push('/');
    }
    Some(out)
}

/// Whether a glob has any wildcard, i.e. matches more than one literal path.
pub fn has_glob_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', ']', '{', '}', '\\'])
}

/// The directory (or file) a glob owns when it is a literal path or `<literal dir>/**`
/// (`""` for `**`): such globs are looked up in an index, the rest are compiled into a
/// pattern set, whose cost grows with their number.
pub fn literal_dir(g: &str) -> Option<&str> {
    if g == "**" {
        Some("")
    } else if let Some(dir) = g.strip_suffix("/**").filter(|d| !has_glob_meta(d)) {
        Some(dir)
    } else if !has_glob_meta(g) {
        Some(g)
    } else {
        None
    }
}

/// The characters of a glob before its first wildcard.
pub fn literal_prefix(s: &str) -> &str {
    s.find(['*', '?', '[', '{', '\\']).map_or(s, |i| &s[..i])
}

/// Compiles a glob the way every glob of countersign matches: `*` and `?` never cross a
/// `/` (only `**` does), case-sensitive, `\` escapes. The same rules as CODEOWNERS and
/// `.gitignore`, so one glob means the same thing in a catalog annotation and in CODEOWNERS.
pub fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_table() {
        let cases = [
            ("services/pay", "src/**", Some("services/pay/src/**")),
            ("services/pay", "./src/", Some("services/pay/src/")),
            (
                "services/pay",
                "../shared/x.rs",
                Some("services/shared/x.rs"),
            ),
            ("", "a/b", Some("a/b")),
            ("a", "../..", None),
            ("a", "..", Some("")),
        ];
        for (dir, rel, expect) in cases {
            assert_eq!(join(dir, rel).as_deref(), expect, "{dir} + {rel}");
        }
        assert_eq!(dir_of("a/b/c.yaml"), "a/b");
        assert_eq!(dir_of("c.yaml"), "");
        assert_eq!(literal_prefix("services/*/src/**"), "services/");
    }
}
