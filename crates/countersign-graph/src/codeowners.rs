//! CODEOWNERS with GitHub's semantics: which rule owns a path, and who its owners are.
//!
//! Rules as GitHub documents them ("About code owners"):
//! - the **last** matching line wins; a matching line with no owners un-owns the path;
//! - a pattern with a leading or inner `/` is anchored at the root, otherwise it matches at
//!   any depth (`*.js`, `apps/`);
//! - a trailing `/` matches everything below that directory;
//! - `*` and `?` do not cross `/`, `**` does; so `docs/*` owns `docs/a.md` but not
//!   `docs/x/b.md`;
//! - a pattern whose last segment has no wildcard names a file *or* a directory, so `apps`
//!   and `/build/logs` also own everything below them;
//! - `#` starts a comment (also after the owners); `\#` is a literal `#`;
//! - `!` negation and `[ ]` ranges do not work on GitHub: such lines are skipped and
//!   reported, as are patterns that do not compile.
//!
//! Owners are kept as written ([`Owner`]); matching them to catalog Groups and Users is
//! [`crate::graph`]'s job. All patterns compile into one `GlobSet`, and a lookup takes the
//! highest matching rule index, so a lookup costs one automaton pass, not one per line.

use globset::{GlobSet, GlobSetBuilder};

use crate::diagnostic::{Diagnostic, DiagnosticCode, Severity};
use crate::model::SourceLocation;
use crate::repo_path;

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

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
    set: GlobSet,
    /// For each glob of `set`, the index of the rule it came from.
    glob_rule: Vec<usize>,
}

impl Codeowners {
    /// Parses CODEOWNERS text. Never fails: lines GitHub would ignore are reported.
    pub fn parse(file: &str, text: &str) -> (Codeowners, Vec<Diagnostic>) {
        let mut diagnostics = Vec::new();
        let mut rules = Vec::new();
        let mut builder = GlobSetBuilder::new();
        let mut glob_rule = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let at = || {
                Some(SourceLocation {
                    file: file.to_string(),
                    line,
                })
            };
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let mut tokens = trimmed.split_whitespace();
            let Some(pattern) = tokens.next() else {
                continue;
            };
            let mut unsupported = |why: &str| {
                diagnostics.push(Diagnostic::new(
                    Severity::Warning,
                    DiagnosticCode::UnsupportedPattern,
                    format!("CODEOWNERS pattern `{pattern}`: {why}; GitHub ignores this line"),
                    at(),
                ));
            };
            if pattern.starts_with('!') {
                unsupported("`!` negation is not supported");
                continue;
            }
            if pattern.contains('[') || pattern.contains(']') {
                unsupported("`[ ]` character ranges are not supported");
                continue;
            }
            let globs = translate(pattern);
            let compiled: Result<Vec<_>, _> = globs.iter().map(|g| repo_path::glob(g)).collect();
            let compiled = match compiled {
                Ok(c) => c,
                Err(e) => {
                    unsupported(&format!("does not compile ({})", e.kind()));
                    continue;
                }
            };
            let mut owners = Vec::new();
            for token in tokens.take_while(|t| !t.starts_with('#')) {
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
            for glob in compiled {
                builder.add(glob);
                glob_rule.push(rules.len());
            }
            rules.push(Rule {
                pattern: pattern.to_string(),
                owners,
                line,
            });
        }
        // Every glob compiled on its own above, and a set of valid globs always builds;
        // an empty set is the fallback that can only be reached by a globset bug.
        let set = builder.build().unwrap_or_else(|_| GlobSet::empty());
        (
            Codeowners {
                file: file.to_string(),
                rules,
                set,
                glob_rule,
            },
            diagnostics,
        )
    }

    /// The rule that decides `path`'s owners: the last line that matches it.
    pub fn rule_for(&self, path: &str) -> Option<&Rule> {
        let best = self
            .set
            .matches(path)
            .into_iter()
            .map(|g| self.glob_rule[g])
            .max()?;
        self.rules.get(best)
    }

    /// The owners of `path`; empty when no line matches or the last one has no owners.
    pub fn owners_of(&self, path: &str) -> &[Owner] {
        self.rule_for(path).map_or(&[], |r| r.owners.as_slice())
    }
}

/// The globs (one or two) that mean what a CODEOWNERS pattern means on GitHub.
pub fn translate(pattern: &str) -> Vec<String> {
    let dir_only = pattern.ends_with('/');
    let core = pattern.trim_start_matches('/').trim_end_matches('/');
    if core.is_empty() {
        return vec!["**".to_string()];
    }
    let anchored = pattern.starts_with('/') || core.contains('/');
    let prefix = if anchored || core.starts_with("**") {
        ""
    } else {
        "**/"
    };
    if dir_only {
        return vec![format!("{prefix}{core}/**")];
    }
    let last = core.rsplit('/').next().unwrap_or(core);
    if repo_path::has_glob_meta(last) && last != "\\#" && !last.starts_with("\\#") {
        vec![format!("{prefix}{core}")]
    } else {
        vec![format!("{prefix}{core}"), format!("{prefix}{core}/**")]
    }
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

    /// Every example of GitHub's "About code owners" documentation, as (file, path, owners).
    #[test]
    fn github_docs_examples() {
        let cases: &[(&str, &str, &str)] = &[
            // Default owners for everything.
            (
                "* @global-owner1 @global-owner2",
                "README.md",
                "@global-owner1 @global-owner2",
            ),
            (
                "* @global-owner1 @global-owner2",
                "a/b/c.txt",
                "@global-owner1 @global-owner2",
            ),
            // Order is important; the last matching pattern takes precedence.
            (
                "* @global-owner1\n*.js @js-owner #This is an inline comment.",
                "src/app.js",
                "@js-owner",
            ),
            (
                "* @global-owner1\n*.js @js-owner",
                "src/app.ts",
                "@global-owner1",
            ),
            // Email owners.
            ("*.go docs@example.com", "cmd/main.go", "docs@example.com"),
            // Teams.
            (
                "*.txt @octo-org/octocats",
                "notes/todo.txt",
                "@octo-org/octocats",
            ),
            // /build/logs/: the build/logs directory at the root and any of its subdirectories.
            ("/build/logs/ @doctocat", "build/logs/a.log", "@doctocat"),
            (
                "/build/logs/ @doctocat",
                "build/logs/deep/a.log",
                "@doctocat",
            ),
            ("/build/logs/ @doctocat", "x/build/logs/a.log", ""),
            // docs/*: docs/getting-started.md but not docs/build-app/troubleshooting.md.
            (
                "docs/* docs@example.com",
                "docs/getting-started.md",
                "docs@example.com",
            ),
            (
                "docs/* docs@example.com",
                "docs/build-app/troubleshooting.md",
                "",
            ),
            // apps/: any file in an apps directory anywhere.
            ("apps/ @octocat", "apps/a.rs", "@octocat"),
            ("apps/ @octocat", "deep/nested/apps/x/y.rs", "@octocat"),
            ("apps/ @octocat", "apps", ""),
            // /docs/: the /docs directory at the root and any of its subdirectories.
            ("/docs/ @doctocat", "docs/a/b.md", "@doctocat"),
            ("/docs/ @doctocat", "src/docs/b.md", ""),
            // /scripts/: two owners.
            (
                "/scripts/ @doctocat @octocat",
                "scripts/deploy.sh",
                "@doctocat @octocat",
            ),
            // **/logs: any logs directory.
            ("**/logs @octocat", "build/logs/a", "@octocat"),
            ("**/logs @octocat", "scripts/logs/a", "@octocat"),
            ("**/logs @octocat", "deeply/nested/logs/a", "@octocat"),
            ("**/logs @octocat", "logs/a", "@octocat"),
            // /apps/ with /apps/github un-owned.
            ("/apps/ @octocat\n/apps/github", "apps/web/x.ts", "@octocat"),
            ("/apps/ @octocat\n/apps/github", "apps/github/x.ts", ""),
            // /apps/ with /apps/github owned by someone else.
            (
                "/apps/ @octocat\n/apps/github @doctocat",
                "apps/github/x.ts",
                "@doctocat",
            ),
            (
                "/apps/ @octocat\n/apps/github @doctocat",
                "apps/other/x.ts",
                "@octocat",
            ),
            // Plain names match a file or directory at any depth, and what is below it.
            ("apps @octocat", "apps/x.rs", "@octocat"),
            ("apps @octocat", "a/apps", "@octocat"),
            ("Makefile @octocat", "sub/Makefile", "@octocat"),
            // `*` does not cross `/`; `**` does.
            ("/src/*.rs @a", "src/lib.rs", "@a"),
            ("/src/*.rs @a", "src/x/lib.rs", ""),
            ("/src/**/*.rs @a", "src/x/y/lib.rs", "@a"),
            // Escaped `#` is a literal pattern, not a comment.
            ("\\#notes @a", "#notes", "@a"),
            ("# comment only", "anything", ""),
            // Unsupported syntax is skipped (the earlier rule stays in force).
            ("* @a\n!secret.txt\n", "secret.txt", "@a"),
            ("* @a\n*.[ch] @b\n", "x.c", "@a"),
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
        let (_, diagnostics) =
            Codeowners::parse("CODEOWNERS", "* @a\n!secret.txt @b\n*.[ch] @c\n/x foo\n");
        let got: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "CODEOWNERS:2: warning: CODEOWNERS pattern `!secret.txt`: `!` negation is not supported; GitHub ignores this line",
                "CODEOWNERS:3: warning: CODEOWNERS pattern `*.[ch]`: `[ ]` character ranges are not supported; GitHub ignores this line",
                "CODEOWNERS:4: warning: CODEOWNERS owner `foo` is neither @user, @org/team nor an email; ignored",
            ]
        );
    }
}
