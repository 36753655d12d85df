//! The graph's vocabulary: entity kinds and references, nodes, criticality, surfaces.
//!
//! These are plain values, with their JSON form ([`node_json`], which the graph's version
//! hashes). Parsing descriptors into them lives in `backstage`, `codeowners` and
//! `workspace`; traversal lives in `impact`, rendering whole graphs in `render`.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Value, json};

/// A Backstage entity kind. Ordered so canonical forms sort deterministically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Component,
    Api,
    Resource,
    System,
    Domain,
    Group,
    User,
    Location,
}

/// A fully resolved entity reference, `kind:namespace/name`, compared case-insensitively
/// as Backstage does (the stored form is lower-cased).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntityRef {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

/// How critical a node is. Ordered: `Low < Moderate < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Criticality {
    #[default]
    Low,
    Moderate,
    High,
    Critical,
}

/// A sensitive surface. The never-automate list is a set of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Surface {
    Auth,
    Authz,
    Payments,
    RegulatedData,
    Irreversible,
    CiCd,
    Governance,
    /// Files that run during a build or CI job (`build.rs`, `.cargo/config.toml`,
    /// `Makefile`, `Dockerfile`, ...): built in, from [`crate::settings::BUILD_FILES`].
    Build,
}

/// Whether a node faces the internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Exposure {
    Internet,
    #[default]
    Internal,
}

/// Index of a node inside one [`crate::SystemGraph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

/// Where an entity or rule came from, for diagnostics and explanations.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceLocation {
    /// Repository-relative path with `/` separators.
    pub file: String,
    /// 1-based line of the entity's document or the rule.
    pub line: u32,
}

/// One entity of the system graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: NodeId,
    pub entity: EntityRef,
    pub title: Option<String>,
    /// `spec.type` (service, library, website, database, queue, pipeline, team, ...).
    pub spec_type: Option<String>,
    pub owner: Option<EntityRef>,
    pub system: Option<EntityRef>,
    pub criticality: Criticality,
    pub surfaces: BTreeSet<Surface>,
    /// Repository-relative globs of the files this node owns.
    pub paths: Vec<String>,
    pub suites: Vec<String>,
    pub revenue_path: bool,
    pub exposure: Exposure,
    pub data_classes: BTreeSet<String>,
    /// `memberOf` for users, `spec.members` resolved, as group refs.
    pub member_of: Vec<EntityRef>,
    pub source: SourceLocation,
}

/// A keyword that names none of an enum's values (`surface = "payment"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}` (expected one of: {expected})")]
pub struct UnknownKeyword {
    /// What was being parsed: `kind`, `surface`, `criticality`, `exposure`.
    pub what: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// Declares the kebab-case spelling of each variant once, and derives `as_str`,
/// `ALL`, `FromStr`, `Display` and a string `Serialize` from it, so the names in
/// annotations, config, JSON and Cedar can never drift apart.
macro_rules! keywords {
    ($ty:ident, $what:literal, case_insensitive: $ci:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration (and `Ord`) order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The canonical lower-case spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl std::str::FromStr for $ty {
            type Err = UnknownKeyword;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let s = s.trim();
                $(
                    if s == $name || ($ci && s.eq_ignore_ascii_case($name)) {
                        return Ok($ty::$variant);
                    }
                )+
                Err(UnknownKeyword {
                    what: $what,
                    value: s.to_string(),
                    expected: concat!($($name, ", "),+).trim_end_matches(", "),
                })
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

// Backstage compares kinds case-insensitively (`Component`, `component`, `API`).
keywords!(Kind, "kind", case_insensitive: true, {
    Component => "component",
    Api => "api",
    Resource => "resource",
    System => "system",
    Domain => "domain",
    Group => "group",
    User => "user",
    Location => "location",
});

keywords!(Criticality, "criticality", case_insensitive: false, {
    Low => "low",
    Moderate => "moderate",
    High => "high",
    Critical => "critical",
});

keywords!(Surface, "surface", case_insensitive: false, {
    Auth => "auth",
    Authz => "authz",
    Payments => "payments",
    RegulatedData => "regulated-data",
    Irreversible => "irreversible",
    CiCd => "ci-cd",
    Governance => "governance",
    Build => "build",
});

keywords!(Exposure, "exposure", case_insensitive: false, {
    Internet => "internet",
    Internal => "internal",
});

impl Kind {
    /// The spelling Backstage descriptors use in `kind:` (`Component`, `API`, ...).
    pub fn descriptor_name(self) -> &'static str {
        match self {
            Kind::Component => "Component",
            Kind::Api => "API",
            Kind::Resource => "Resource",
            Kind::System => "System",
            Kind::Domain => "Domain",
            Kind::Group => "Group",
            Kind::User => "User",
            Kind::Location => "Location",
        }
    }
}

impl EntityRef {
    /// Builds a reference, lower-casing namespace and name as Backstage compares them.
    /// Does not validate: use [`crate::entity_ref::parse`] for untrusted text.
    pub fn new(kind: Kind, namespace: &str, name: &str) -> Self {
        EntityRef {
            kind,
            namespace: namespace.to_ascii_lowercase(),
            name: name.to_ascii_lowercase(),
        }
    }
}

/// `kind:namespace/name`, all lower-case: Backstage's `stringifyEntityRef`.
impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Pieces, not `write!`: decision reports format thousands of these per decision.
        f.write_str(self.kind.as_str())?;
        f.write_str(":")?;
        f.write_str(&self.namespace)?;
        f.write_str("/")?;
        f.write_str(&self.name)
    }
}

impl EntityRef {
    /// The string form (see `Display`), allocated once at its final size.
    pub fn to_text(&self) -> String {
        let kind = self.kind.as_str();
        let mut text =
            String::with_capacity(kind.len() + self.namespace.len() + self.name.len() + 2);
        text.push_str(kind);
        text.push(':');
        text.push_str(&self.namespace);
        text.push('/');
        text.push_str(&self.name);
        text
    }
}

/// Serialized as its string form so JSON consumers see `component:default/payments-api`.
impl serde::Serialize for EntityRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl serde::Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.0)
    }
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

impl serde::Serialize for SourceLocation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("SourceLocation", 2)?;
        st.serialize_field("file", &self.file)?;
        st.serialize_field("line", &self.line)?;
        st.end()
    }
}

/// One node as JSON; `with_source` false leaves out the position (for the version,
/// which must not change when a document moves within its file).
pub fn node_json(n: &Node, with_source: bool) -> Value {
    let mut paths = n.paths.clone();
    if !with_source {
        paths.sort();
    }
    let mut v = json!({
        "ref": n.entity,
        "kind": n.entity.kind,
        "namespace": n.entity.namespace,
        "name": n.entity.name,
        "title": n.title,
        "type": n.spec_type,
        "owner": n.owner,
        "system": n.system,
        "criticality": n.criticality,
        "surfaces": n.surfaces,
        "paths": paths,
        "suites": n.suites,
        "revenue_path": n.revenue_path,
        "exposure": n.exposure,
        "data_classes": n.data_classes,
        "member_of": n.member_of,
    });
    if with_source && let Some(obj) = v.as_object_mut() {
        obj.insert("source".into(), json!(n.source));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::{EntityRef, Kind};

    #[test]
    fn to_text_is_the_display_form() {
        for kind in Kind::ALL {
            let entity = EntityRef::new(*kind, "Default", "Payments-API");
            assert_eq!(entity.to_text(), entity.to_string());
            assert_eq!(
                entity.to_text(),
                format!("{}:default/payments-api", kind.as_str())
            );
        }
    }
}
