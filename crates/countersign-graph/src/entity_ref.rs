//! Parsing `[kind:][namespace/]name` references with Backstage's defaulting rules.
//!
//! Mirrors `parseEntityRef` of `@backstage/catalog-model`: the kind defaults to what the
//! referencing field implies (`owner` → Group, `providesApis` → API; `dependsOn` has no
//! default and must name its kind), the namespace defaults to the *referencing entity's*
//! namespace, and everything compares case-insensitively (stored lower-case). It does not
//! check that the target exists: that is the graph build's job, and a finding, not an error.

use crate::model::{EntityRef, Kind};

/// What a reference defaults to when it leaves parts out.
#[derive(Debug, Clone, Copy)]
pub struct RefContext<'a> {
    pub default_kind: Option<Kind>,
    pub default_namespace: &'a str,
}

/// A reference that is not `[kind:][namespace/]name`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntityRefError {
    #[error("entity reference must not be empty")]
    Empty,
    #[error("entity reference `{0}` was not on the form [<kind>:][<namespace>/]<name>")]
    NotOnForm(String),
    #[error(
        "entity reference `{0}` did not specify a kind (e.g. starting with `component:`), and has no default"
    )]
    MissingKind(String),
    #[error("entity reference `{reference}` names unknown kind `{kind}`")]
    UnknownKind { reference: String, kind: String },
    #[error(
        "entity reference `{reference}` has an invalid {part} `{value}` \
         (letters, digits and inner `-`, `_`, `.`, at most 63 characters)"
    )]
    InvalidPart {
        reference: String,
        part: &'static str,
        value: String,
    },
}

/// Parses `text` into a reference, filling the parts it omits from `ctx`.
pub fn parse(text: &str, ctx: RefContext<'_>) -> Result<EntityRef, EntityRefError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(EntityRefError::Empty);
    }
    let slash = text.find('/');
    // As in Backstage: a `/` before the `:` means the colon belongs to the name
    // (`default/foo:bar`), not to a kind.
    let colon = text.find(':').filter(|&c| slash.is_none_or(|s| s > c));
    let kind = colon.map(|c| &text[..c]);
    let namespace = slash.map(|s| &text[colon.map_or(0, |c| c + 1)..s]);
    let name_start = colon.map_or(0, |c| c + 1).max(slash.map_or(0, |s| s + 1));
    let name = &text[name_start..];
    if kind == Some("") || namespace == Some("") || name.is_empty() {
        return Err(EntityRefError::NotOnForm(text.to_string()));
    }
    let kind = match kind {
        Some(k) => k.parse::<Kind>().map_err(|_| EntityRefError::UnknownKind {
            reference: text.to_string(),
            kind: k.to_string(),
        })?,
        None => ctx
            .default_kind
            .ok_or_else(|| EntityRefError::MissingKind(text.to_string()))?,
    };
    let namespace = namespace.unwrap_or(ctx.default_namespace);
    if !valid_part(namespace) {
        return Err(EntityRefError::InvalidPart {
            reference: text.to_string(),
            part: "namespace",
            value: namespace.to_string(),
        });
    }
    if !valid_part(name) {
        return Err(EntityRefError::InvalidPart {
            reference: text.to_string(),
            part: "name",
            value: name.to_string(),
        });
    }
    Ok(EntityRef::new(kind, namespace, name))
}

/// Backstage's name rule: `^[a-zA-Z0-9]+([-_.][a-zA-Z0-9]+)*$`, at most 63 characters.
/// Namespaces follow it too here; Backstage's stricter DNS-label rule for namespaces
/// only differs on `_` and `.`, which no real catalog relies on.
pub fn valid_part(s: &str) -> bool {
    if s.is_empty() || s.len() > 63 {
        return false;
    }
    let mut prev_sep = true;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            prev_sep = false;
        } else if matches!(c, '-' | '_' | '.') {
            if prev_sep {
                return false;
            }
            prev_sep = true;
        } else {
            return false;
        }
    }
    !prev_sep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, default_kind: Option<Kind>, namespace: &str, expect: &str) {
        let got = match parse(
            text,
            RefContext {
                default_kind,
                default_namespace: namespace,
            },
        ) {
            Ok(r) => r.to_string(),
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(got, expect, "parsing {text:?}");
    }

    #[test]
    fn resolution_table() {
        use Kind::*;
        let cases: &[(&str, Option<Kind>, &str, &str)] = &[
            ("payments", Some(Group), "default", "group:default/payments"),
            ("payments", Some(Group), "finance", "group:finance/payments"),
            ("ops/payments", Some(Group), "finance", "group:ops/payments"),
            ("user:alice", Some(Group), "default", "user:default/alice"),
            (
                "User:Finance/Alice",
                Some(Group),
                "default",
                "user:finance/alice",
            ),
            (
                "API:default/Payments-API",
                None,
                "default",
                "api:default/payments-api",
            ),
            (
                "resource:orders-db",
                None,
                "shop",
                "resource:shop/orders-db",
            ),
            (
                "  component:web  ",
                None,
                "default",
                "component:default/web",
            ),
            (
                "default/foo:bar",
                Some(Component),
                "x",
                "error: entity reference `default/foo:bar` has an invalid name `foo:bar` (letters, digits and inner `-`, `_`, `.`, at most 63 characters)",
            ),
            (
                "orders-db",
                None,
                "default",
                "error: entity reference `orders-db` did not specify a kind (e.g. starting with `component:`), and has no default",
            ),
            (
                "",
                Some(Group),
                "default",
                "error: entity reference must not be empty",
            ),
            (
                ":foo",
                Some(Group),
                "default",
                "error: entity reference `:foo` was not on the form [<kind>:][<namespace>/]<name>",
            ),
            (
                "group:/foo",
                None,
                "default",
                "error: entity reference `group:/foo` was not on the form [<kind>:][<namespace>/]<name>",
            ),
            (
                "group:ns/",
                None,
                "default",
                "error: entity reference `group:ns/` was not on the form [<kind>:][<namespace>/]<name>",
            ),
            (
                "template:foo",
                None,
                "default",
                "error: entity reference `template:foo` names unknown kind `template`",
            ),
            (
                "group:team a",
                None,
                "default",
                "error: entity reference `group:team a` has an invalid name `team a` (letters, digits and inner `-`, `_`, `.`, at most 63 characters)",
            ),
            (
                "group:-team",
                None,
                "default",
                "error: entity reference `group:-team` has an invalid name `-team` (letters, digits and inner `-`, `_`, `.`, at most 63 characters)",
            ),
            (
                "group:my ns/team",
                None,
                "default",
                "error: entity reference `group:my ns/team` has an invalid namespace `my ns` (letters, digits and inner `-`, `_`, `.`, at most 63 characters)",
            ),
        ];
        for (text, kind, ns, expect) in cases {
            check(text, *kind, ns, expect);
        }
    }
}
