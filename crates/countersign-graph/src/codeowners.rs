//! CODEOWNERS with GitHub's semantics: which rule owns a path, and who its owners are.
//!
//! Rules as GitHub documents them ("About code owners"), checked against the pattern vectors
//! of hmarr/codeowners and against PyPI `codeowners` (see `tests/codeowners.rs`):
//! - the **last** matching line wins; a matching line with no owners un-owns the path;
//! - a pattern of one segment (`*.js`, `apps/`, `logs`) matches at any depth; a leading or
//!   inner `/` anchors it at the root (`/build/logs`, `docs/*`);
//! - `*` and `?` do not cross `/`, `**` does;
//! - whatever a pattern matches, it also owns everything below it, as in gitignore: `apps`,
//!   `/build/logs`, `pay*` and `services/*/src` own the files inside the directories they
//!   match. The one exception is a lone `*` as the last segment: `docs/*` owns `docs/a.md`
//!   but not `docs/x/b.md`, as GitHub documents;
//! - a trailing `/` matches only what is below a directory (`apps/` owns `apps/a`, not a file
//!   named `apps`);
//! - `\` escapes the next character, so `a\ b` is a pattern with a space;
//! - `#` at the start of a line, or starting an owner, begins a comment;
//! - `!` negation and escaping a leading `#` do not work on GitHub: such lines are skipped and
//!   reported. `[ ]` is not a character range there either: `[` and `]` are matched as
//!   literal characters (Next.js routes such as `app/[id]/page.tsx`), and reported.
//!
//! Limits: a file of [`MAX_FILE_BYTES`] or more is ignored, as GitHub ignores it; a pattern
//! longer than [`MAX_PATTERN_BYTES`] is skipped and reported; a file with more than
//! [`MAX_WILDCARD_RULES`] rules that need a regex is not applied, with an error. All three
//! are checked before any glob set is built, so an oversized file costs one pass over its
//! text.
//!
//! Owners are kept as written ([`Owner`]); matching them to catalog Groups and Users is
//! [`crate::graph`]'s job. Each pattern compiles to one glob that names what it matches
//! itself, and "everything below it" is found by matching the path's ancestor directories
//! too, rather than by a second `…/**` glob: a plain name then stays a hash lookup in
//! globset instead of becoming a regex. The globs of a file compile into as few `GlobSet`s as
//! the automaton size limit allows, and a lookup takes the highest matching rule index, so it
//! costs a few set passes per directory level, not one per line.

use std::fmt;

use globset::{Candidate, GlobSet};

use crate::diagnostic::{Diagnostic, DiagnosticCode, Severity};
use crate::model::SourceLocation;
use crate::repo_path;

/// GitHub does not load a CODEOWNERS file of 3 MB or more ("CODEOWNERS files must be under
/// 3 MB in size"). GitHub's "MB" in size limits is binary (Rails' `3.megabytes`), so the
/// limit is 3 MiB; a file of this size or more is ignored as a whole.
pub const MAX_FILE_BYTES: usize = 3 * 1024 * 1024;

/// The longest pattern countersign accepts, in bytes: Linux's `PATH_MAX`. A longer pattern
/// cannot name a path a checkout can hold, and globs are built from patterns, so the bound
/// keeps one hostile line from asking for gigabytes.
pub const MAX_PATTERN_BYTES: usize = 4096;

/// The most wildcard rules countersign applies: rules with a `*` or `?` that globset cannot
/// answer by a lookup, so that each costs a share of a regex automaton (`/src/*.rs`, `pay*`,
/// `a/**/b`; not `/apps/`, `docs`, `*.js` or `**/logs`). Each costs about 5 KB and its part of
/// every lookup; a file of the shortest such lines under GitHub's size limit would hold
/// 250,000 of them and take 1.1 GB and 22 s to compile. Over the limit the file is not
/// applied at all, with an error naming the line, rather than applied in part.
pub const MAX_WILDCARD_RULES: usize = 10_000;

/// How much of an overlong pattern a diagnostic quotes.
const QUOTED_PATTERN_CHARS: usize = 64;

/// An owner as written in CODEOWNERS.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    /// `@org/team-slug`.
    Team { org: String, slug: String },
    /// `@login`.
    User(String),
    /// `someone@example.com`, matched against users' `spec.profile.email`.
    Email(String),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Team { org, slug } => write!(f, "@{org}/{slug}"),
            Owner::User(login) => write!(f, "@{login}"),
            Owner::Email(email) => f.write_str(email),
        }
    }
}

/// One effective line of CODEOWNERS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// As written, escapes included (`a\ b`).
    pub pattern: String,
    /// Empty: the line un-owns what it matches.
    pub owners: Vec<Owner>,
    pub line: u32,
}

/// A parsed CODEOWNERS file.
#[derive(Debug, Clone)]
pub struct Codeowners {
    pub file: String,
    pub rules: Vec<Rule>,
    /// Globs matched against the path, and against each of its ancestors when the rule owns
    /// what is below what it matches ([`Reach`]).
    exact: Vec<RuleSet>,
    descend: Vec<RuleSet>,
    below: Vec<RuleSet>,
}

/// Which names a rule's glob is matched against, for a path `a/b/c.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Only the path (`docs/*`, `**`).
    Exact,
    /// The path and its ancestors `a` and `a/b`: a rule owns what is below what it matches
    /// (`apps`, `pay*`).
    Descend,
    /// Only the ancestors: a trailing `/` or `/**` owns what is below a directory, not a file
    /// of that name (`apps/`, `foo/**`).
    Below,
}

/// Globs compiled together, and for each glob the index of the rule it came from.
#[derive(Debug, Clone)]
struct RuleSet {
    set: GlobSet,
    rule: Vec<usize>,
}

/// Why a line is skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Unsupported {
    TooLong(usize),
    Negation,
    EscapedHash,
    TripleStar,
    MatchesNothing,
    DoesNotCompile(String),
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsupported::TooLong(len) => write!(
                f,
                "the pattern is {len} bytes, over the limit of {MAX_PATTERN_BYTES} bytes; GitHub would not match it to any path countersign accepts, so the line is ignored"
            ),
            Unsupported::Negation => {
                f.write_str("`!` negation is not supported; GitHub ignores this line")
            }
            Unsupported::EscapedHash => f.write_str(
                "escaping a leading `#` with `\\` is not supported; GitHub ignores this line",
            ),
            Unsupported::TripleStar => f.write_str(
                "three or more `*` in a row have no meaning in CODEOWNERS; the line is ignored",
            ),
            Unsupported::MatchesNothing => {
                f.write_str("an empty path segment matches no file; the line is ignored")
            }
            Unsupported::DoesNotCompile(why) => {
                write!(f, "does not compile ({why}); GitHub ignores this line")
            }
        }
    }
}

impl Codeowners {
    /// Parses CODEOWNERS text. Never fails: lines GitHub would ignore are reported, and so is
    /// a file GitHub would not load at all.
    pub fn parse(file: &str, text: &str) -> (Codeowners, Vec<Diagnostic>) {
        if text.len() >= MAX_FILE_BYTES {
            return Codeowners::ignored(
                file,
                Severity::Warning,
                format!(
                    "CODEOWNERS file `{file}` is {} bytes, at or over GitHub's limit of {MAX_FILE_BYTES} bytes (3 MiB): GitHub does not load it, so none of its rules apply",
                    text.len()
                ),
                None,
            );
        }

        let mut diagnostics = Vec::new();
        let mut wildcard_rules = 0;
        let mut rules = Vec::new();
        // Glob strings, not compiled globs: a compiled glob is ten times its text, and the set
        // keeps its own copy (this is most of the memory of a file of many short lines).
        let mut globs: [Vec<(String, usize)>; 3] = Default::default();
        for (i, raw) in text.lines().enumerate() {
            let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let at = || {
                Some(SourceLocation {
                    file: file.to_string(),
                    line,
                })
            };
            let Some((pattern, rest)) = split_line(raw) else {
                continue;
            };
            let warn = |diagnostics: &mut Vec<Diagnostic>, why: &dyn fmt::Display| {
                diagnostics.push(Diagnostic::new(
                    Severity::Warning,
                    DiagnosticCode::UnsupportedPattern,
                    format!("CODEOWNERS pattern `{}`: {why}", quoted(pattern)),
                    at(),
                ));
            };
            let compiled = translate(pattern).and_then(|t| {
                repo_path::glob(&t.glob)
                    .map(|_| t)
                    .map_err(|e| Unsupported::DoesNotCompile(e.kind().to_string()))
            });
            let translated = match compiled {
                Ok(c) => c,
                Err(why) => {
                    warn(&mut diagnostics, &why);
                    continue;
                }
            };
            if !translated.indexed {
                wildcard_rules += 1;
                if wildcard_rules > MAX_WILDCARD_RULES {
                    return Codeowners::ignored(
                        file,
                        Severity::Error,
                        format!(
                            "CODEOWNERS file `{file}` has more than {MAX_WILDCARD_RULES} wildcard rules (patterns with `*` or `?` other than `*.ext` or a leading `**/`), countersign's limit: it is not applied, so none of its rules apply, although GitHub would apply them"
                        ),
                        at(),
                    );
                }
            }
            if has_unescaped(pattern, &['[', ']']) {
                warn(
                    &mut diagnostics,
                    &"`[ ]` is not a character range in CODEOWNERS; `[` and `]` are matched as literal characters",
                );
            }
            let mut owners = Vec::new();
            for token in rest.split_whitespace().take_while(|t| !t.starts_with('#')) {
                match parse_owner(token) {
                    Some(owner) => owners.push(owner),
                    None => diagnostics.push(Diagnostic::new(
                        Severity::Warning,
                        DiagnosticCode::UnknownOwner,
                        format!("CODEOWNERS owner `{token}` is neither @user, @org/team nor an email; ignored"),
                        at(),
                    )),
                }
            }
            globs[translated.reach as usize].push((translated.glob, rules.len()));
            rules.push(Rule {
                pattern: pattern.to_string(),
                owners,
                line,
            });
        }
        let [exact, descend, below] = globs.map(|globs| {
            let mut sets = Vec::new();
            build_sets(&globs, &mut sets, &mut |rule, why| {
                // Only a glob whose own automaton is over globset's size limit gets here; the
                // pattern bound makes that unreachable in practice, but the rule must not
                // then silently match nothing.
                if let Some(r) = rules.get(rule) {
                    diagnostics.push(Diagnostic::new(
                        Severity::Warning,
                        DiagnosticCode::UnsupportedPattern,
                        format!(
                            "CODEOWNERS pattern `{}`: {}",
                            quoted(&r.pattern),
                            Unsupported::DoesNotCompile(why)
                        ),
                        Some(SourceLocation {
                            file: file.to_string(),
                            line: r.line,
                        }),
                    ));
                }
            });
            sets
        });
        let co = Codeowners {
            file: file.to_string(),
            rules,
            exact,
            descend,
            below,
        };
        (co, diagnostics)
    }

    /// A file none of whose rules apply, and the one diagnostic that says why.
    fn ignored(
        file: &str,
        severity: Severity,
        message: String,
        location: Option<SourceLocation>,
    ) -> (Codeowners, Vec<Diagnostic>) {
        let co = Codeowners {
            file: file.to_string(),
            rules: Vec::new(),
            exact: Vec::new(),
            descend: Vec::new(),
            below: Vec::new(),
        };
        let why = Diagnostic::new(
            severity,
            DiagnosticCode::CodeownersIgnored,
            message,
            location,
        );
        (co, vec![why])
    }

    /// The index in [`Codeowners::rules`] of the rule that decides `path`'s owners: the last
    /// line that matches it.
    pub fn rule_index_for(&self, path: &str) -> Option<usize> {
        let mut best = None;
        let mut hits = Vec::new();
        let mut consider = |sets: &[RuleSet], name: &Candidate<'_>| {
            for s in sets {
                s.set.matches_candidate_into(name, &mut hits);
                best = hits
                    .iter()
                    .filter_map(|&g| s.rule.get(g).copied())
                    .chain(best)
                    .max();
            }
        };
        let whole = Candidate::new(path);
        consider(&self.exact, &whole);
        consider(&self.descend, &whole);
        for (i, _) in path.match_indices('/') {
            let ancestor = Candidate::new(&path[..i]);
            consider(&self.descend, &ancestor);
            consider(&self.below, &ancestor);
        }
        best
    }

    /// The rule that decides `path`'s owners: the last line that matches it.
    pub fn rule_for(&self, path: &str) -> Option<&Rule> {
        self.rules.get(self.rule_index_for(path)?)
    }

    /// The owners of `path`; empty when no line matches or the last one has no owners.
    pub fn owners_of(&self, path: &str) -> &[Owner] {
        self.rule_for(path).map_or(&[], |r| r.owners.as_slice())
    }
}

/// Compiles `globs` into as few sets as globset's automaton size limit allows: the whole
/// list if it builds, otherwise each half, recursively. A single glob that does not build is
/// handed to `failed` with its rule index.
fn build_sets(
    globs: &[(String, usize)],
    out: &mut Vec<RuleSet>,
    failed: &mut dyn FnMut(usize, String),
) {
    if globs.is_empty() {
        return;
    }
    // Each glob is compiled as the set takes it, so only the set's copy is ever held. They
    // all compiled once already; should one not, the iteration stops there and the set is
    // discarded rather than built with its indexes shifted.
    let mut broken = None;
    let mut compiled = globs.iter().map(|(g, _)| repo_path::glob(g));
    let built = GlobSet::new(std::iter::from_fn(|| match compiled.next()? {
        Ok(glob) => Some(glob),
        Err(e) => {
            broken = Some(e.kind().to_string());
            None
        }
    }));
    let built = match (built, broken) {
        (Ok(set), None) if set.len() == globs.len() => Ok(set),
        (Ok(_), Some(why)) | (Err(_), Some(why)) => Err(why),
        (Ok(_), None) => Err("glob set built short".to_string()),
        (Err(e), None) => Err(e.kind().to_string()),
    };
    match built {
        Ok(set) => out.push(RuleSet {
            set,
            rule: globs.iter().map(|(_, r)| *r).collect(),
        }),
        Err(why) => match globs {
            [(_, rule)] => failed(*rule, why),
            _ => {
                let (first, second) = globs.split_at(globs.len() / 2);
                build_sets(first, out, failed);
                build_sets(second, out, failed);
            }
        },
    }
}

/// A line's pattern and the text after it, or `None` for a blank or comment line. The
/// pattern ends at the first whitespace that no `\` escapes.
fn split_line(raw: &str) -> Option<(&str, &str)> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c.is_whitespace() {
            return Some((&line[..i], &line[i..]));
        }
    }
    Some((line, ""))
}

/// Whether `s` has one of `chars` that no `\` escapes.
fn has_unescaped(s: &str, chars: &[char]) -> bool {
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if chars.contains(&c) {
            return true;
        }
    }
    false
}

/// A pattern as a diagnostic quotes it: whole, or its start when it is over the limit.
fn quoted(pattern: &str) -> String {
    if pattern.len() <= MAX_PATTERN_BYTES {
        return pattern.to_string();
    }
    let start: String = pattern.chars().take(QUOTED_PATTERN_CHARS).collect();
    format!("{start}…")
}

/// What a CODEOWNERS pattern becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Translated {
    /// In the dialect of [`repo_path::glob`].
    glob: String,
    /// Which names of a path the glob is matched against.
    reach: Reach,
    /// Whether globset answers the glob by a lookup rather than a regex.
    indexed: bool,
}

/// The glob that means what a CODEOWNERS pattern means on GitHub.
fn translate(pattern: &str) -> Result<Translated, Unsupported> {
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(Unsupported::TooLong(pattern.len()));
    }
    if pattern.starts_with('!') {
        return Err(Unsupported::Negation);
    }
    if pattern.starts_with("\\#") {
        return Err(Unsupported::EscapedHash);
    }
    if has_triple_star(pattern) {
        return Err(Unsupported::TripleStar);
    }

    let mut segments: Vec<&str> = pattern.split('/').collect();
    let anchored = segments.first() == Some(&"");
    if anchored {
        segments.remove(0);
    }
    let dir_only = segments.len() > 1 && segments.last() == Some(&"");
    if dir_only {
        segments.pop();
    }
    // One segment without a leading `/` matches at any depth; a `/` anywhere else anchors.
    if !anchored && segments.len() == 1 && segments[0] != "**" {
        segments.insert(0, "**");
    }
    // A trailing `/` matches what is below the directory, never the directory's name.
    if dir_only {
        segments.push("**");
    }
    segments.dedup_by(|a, b| *a == "**" && *b == "**");
    if segments.iter().any(|s| s.is_empty()) {
        return Err(Unsupported::MatchesNothing);
    }

    let reach = match segments.as_slice() {
        // `**` alone matches every path already.
        ["**"] => Reach::Exact,
        [.., "**"] => {
            segments.pop();
            Reach::Below
        }
        // A lone `*` last does not reach below what it matches (GitHub's `docs/*`).
        [.., "*"] => Reach::Exact,
        _ => Reach::Descend,
    };
    let mut glob = segments
        .iter()
        .map(|s| literal_brackets(s))
        .collect::<Vec<_>>()
        .join("/");
    let indexed = globset_indexes(&segments);
    if !indexed {
        end_in_alternation(&mut glob);
    }
    Ok(Translated {
        glob,
        reach,
        indexed,
    })
}

/// Whether globset matches the glob of these segments by a lookup rather than a regex: a
/// literal path (`a/b`), a literal path at any depth (`**/a/b`), an extension at any depth
/// (`**/*.rs`), or everything (`**`).
fn globset_indexes(segments: &[&str]) -> bool {
    let literal = |s: &&str| !has_unescaped(s, &['*', '?']);
    match segments {
        ["**"] => true,
        ["**", last]
            if last
                .strip_prefix("*.")
                .is_some_and(|ext| literal(&ext) && !ext.contains('.')) =>
        {
            true
        }
        ["**", rest @ ..] => rest.iter().all(literal),
        all => all.iter().all(literal),
    }
}

/// Makes the last character of a glob that ends in a literal an alternation of itself
/// (`src/*.rs` → `src/*.r{\s}`), which matches exactly what it did.
///
/// globset gives a glob that ends in a literal extension and is not a plain path or
/// extension (`src/*.rs`, `a/**/b.ts`) a "required extension" strategy: one compiled regex
/// per glob, tried in turn on every path with that extension. For thousands of such rules
/// that is kilobytes per rule and a lookup linear in the file. A glob that does not end in a
/// literal goes into the set's shared automaton instead.
fn end_in_alternation(glob: &mut String) {
    let Some(last) = glob.chars().last() else {
        return;
    };
    let body = &glob[..glob.len() - last.len_utf8()];
    // An odd run of `\` before the last character escapes it: it is a literal too, and its
    // `\` moves into the braces.
    let escaped = body.chars().rev().take_while(|&c| c == '\\').count() % 2 == 1;
    if !escaped && matches!(last, '*' | '?' | '\\') {
        return;
    }
    let keep = body.len() - usize::from(escaped);
    glob.truncate(keep);
    glob.push_str("{\\");
    glob.push(last);
    glob.push('}');
}

/// Whether three `*` follow each other without an escape.
fn has_triple_star(s: &str) -> bool {
    let mut escaped = false;
    let mut run = 0;
    for c in s.chars() {
        if escaped {
            escaped = false;
            run = 0;
        } else if c == '\\' {
            escaped = true;
            run = 0;
        } else if c == '*' {
            run += 1;
            if run == 3 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// A pattern segment with `[`, `]`, `{` and `}` escaped: CODEOWNERS has neither character
/// classes nor alternatives, so for GitHub they are ordinary characters.
fn literal_brackets(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    let mut escaped = false;
    for c in segment.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if matches!(c, '[' | ']' | '{' | '}') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn parse_owner(token: &str) -> Option<Owner> {
    if let Some(handle) = token.strip_prefix('@') {
        return match handle.split_once('/') {
            Some((org, slug)) if !org.is_empty() && !slug.is_empty() && !slug.contains('/') => {
                Some(Owner::Team {
                    org: org.to_string(),
                    slug: slug.to_string(),
                })
            }
            None if !handle.is_empty() => Some(Owner::User(handle.to_string())),
            _ => None,
        };
    }
    match token.split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') => {
            Some(Owner::Email(token.to_string()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(text: &str, path: &str) -> String {
        let (co, _) = Codeowners::parse("CODEOWNERS", text);
        co.owners_of(path)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Single lines of GitHub's documentation and the syntax around them, as (file, path,
    /// owners). The documented example file as a whole is in `tests/codeowners.rs`.
    #[test]
    fn one_line_cases() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "* @global-owner1 @global-owner2",
                "a/b/c.txt",
                "@global-owner1 @global-owner2",
            ),
            (
                "* @global-owner1\n*.js @js-owner #This is an inline comment.",
                "src/app.js",
                "@js-owner",
            ),
            ("*.go docs@example.com", "cmd/main.go", "docs@example.com"),
            (
                "/build/logs/ @doctocat",
                "build/logs/deep/a.log",
                "@doctocat",
            ),
            ("/build/logs/ @doctocat", "x/build/logs/a.log", ""),
            ("/build/logs/ @doctocat", "build/logs", ""),
            (
                "docs/* docs@example.com",
                "docs/build-app/troubleshooting.md",
                "",
            ),
            ("apps/ @octocat", "deep/nested/apps/x/y.rs", "@octocat"),
            ("apps/ @octocat", "apps", ""),
            ("/apps/ @octocat\n/apps/github", "apps/github/x.ts", ""),
            // Plain names match a file or directory at any depth, and what is below it.
            ("apps @octocat", "apps/x.rs", "@octocat"),
            ("apps @octocat", "a/apps", "@octocat"),
            ("Makefile @octocat", "sub/Makefile", "@octocat"),
            // `*` does not cross `/`; `**` does.
            ("/src/*.rs @a", "src/lib.rs", "@a"),
            ("/src/*.rs @a", "src/x/lib.rs", ""),
            ("/src/**/*.rs @a", "src/x/y/lib.rs", "@a"),
            // Braces and brackets are ordinary characters.
            ("/web/{a,b}.ts @a", "web/{a,b}.ts", "@a"),
            ("/web/{a,b}.ts @a", "web/a.ts", ""),
            ("/app/[id]/page.tsx @a", "app/[id]/page.tsx", "@a"),
            ("* @a\n*.[ch] @b\n", "x.c", "@a"),
            // Escapes.
            ("f\\*o @a", "f*o", "@a"),
            ("f\\*o @a", "foo", ""),
            ("a\\ b @a", "x/a b", "@a"),
            // The pattern `/` matches nothing rather than everything.
            ("* @a\n/ @b\n", "x", "@a"),
            ("# comment only", "anything", ""),
            // Unsupported syntax is skipped (the earlier rule stays in force).
            ("* @a\n!secret.txt\n", "secret.txt", "@a"),
            ("* @a\n\\#notes @b\n", "#notes", "@a"),
            ("* @a\nfoo/*** @b\n", "foo/x", "@a"),
        ];
        for (text, path, expect) in cases {
            assert_eq!(
                owners(text, path),
                *expect,
                "CODEOWNERS {text:?}, path {path:?}"
            );
        }
    }

    #[test]
    fn unsupported_lines_are_reported() {
        let (_, diagnostics) = Codeowners::parse(
            "CODEOWNERS",
            "* @a\n!secret.txt @b\n*.[ch] @c\n/x foo\n\\#notes @d\n/ @e\na/*** @f\n",
        );
        let got: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "CODEOWNERS:2: warning: CODEOWNERS pattern `!secret.txt`: `!` negation is not supported; GitHub ignores this line",
                "CODEOWNERS:3: warning: CODEOWNERS pattern `*.[ch]`: `[ ]` is not a character range in CODEOWNERS; `[` and `]` are matched as literal characters",
                "CODEOWNERS:4: warning: CODEOWNERS owner `foo` is neither @user, @org/team nor an email; ignored",
                "CODEOWNERS:5: warning: CODEOWNERS pattern `\\#notes`: escaping a leading `#` with `\\` is not supported; GitHub ignores this line",
                "CODEOWNERS:6: warning: CODEOWNERS pattern `/`: an empty path segment matches no file; the line is ignored",
                "CODEOWNERS:7: warning: CODEOWNERS pattern `a/***`: three or more `*` in a row have no meaning in CODEOWNERS; the line is ignored",
            ]
        );
    }

    #[test]
    fn translate_table() {
        use Reach::{Below, Descend, Exact};
        let cases: &[(&str, Reach, &str)] = &[
            ("foo", Descend, "**/foo"),
            ("/foo", Descend, "foo"),
            ("foo/", Below, "**/foo"),
            ("/foo/", Below, "foo"),
            ("foo/bar", Descend, "foo/bar"),
            ("*", Exact, "**/*"),
            ("/*", Exact, "*"),
            ("f*", Descend, "**/f*"),
            ("/*/", Below, "*"),
            ("foo/*", Exact, "foo/*"),
            ("foo/**", Below, "foo"),
            ("foo/**/", Below, "foo"),
            ("**", Exact, "**"),
            ("**/", Exact, "**"),
            ("**/foo", Descend, "**/foo"),
            ("a/[x]{y}", Descend, "a/\\[x\\]\\{y\\}"),
            // Globs that would get a regex of their own end in an alternation instead.
            ("*.rs", Descend, "**/*.rs"),
            ("/a/b.rs", Descend, "a/b.rs"),
            ("b.rs", Descend, "**/b.rs"),
            ("a/b/c.rs", Descend, "a/b/c.rs"),
            ("/src/*.rs", Descend, "src/*.r{\\s}"),
            ("src/**/x*.rs", Descend, "src/**/x*.r{\\s}"),
            ("/a/**/b.rs", Descend, "a/**/b.r{\\s}"),
            ("x*.rs", Descend, "**/x*.r{\\s}"),
            ("/src/x\\*a", Descend, "src/x\\*a"),
            ("/src/*.rs\\x", Descend, "src/*.rs{\\x}"),
            ("/src/*.rs\\\\", Descend, "src/*.rs{\\\\}"),
            ("/src/*.rs/*", Exact, "src/*.rs/*"),
        ];
        for (pattern, reach, glob) in cases {
            let t = translate(pattern).unwrap();
            assert_eq!((t.reach, t.glob.as_str()), (*reach, *glob), "{pattern}");
        }
        // What counts against the limit of wildcard rules.
        let indexed = [
            "/d0/", "/apps/", "docs", "/a/b", "**/logs", "*.md", "**", "a/b/",
        ];
        let wildcard = [
            "*", "/*", "docs/*", "*.tar.gz", "pay*", "a/**/b", "f?o", "**/x*",
        ];
        for (patterns, expect) in [(&indexed, true), (&wildcard, false)] {
            for pattern in patterns {
                assert_eq!(translate(pattern).unwrap().indexed, expect, "{pattern}");
            }
        }
    }
}
