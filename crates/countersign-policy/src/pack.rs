//! A policy pack: a set of checked Cedar policies, ready to evaluate, with its version.
//!
//! The pack is built once (parse, validate, precompute each policy's reason and facts) so
//! a decision only evaluates. It reads no files: `from_files` takes the texts, and the
//! default pack is embedded from `src/pack/*.cedar`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use cedar_policy::{Authorizer, EntityId, EntityTypeName, EntityUid, PolicySet};
use sha2::{Digest, Sha256};

use crate::check::{PolicyDiagnostic, PolicyInfo, Severity, load};
use crate::tier::Tier;

const DEFAULT_FILES: [(&str, &str); 5] = [
    ("tiers.cedar", include_str!("pack/tiers.cedar")),
    (
        "never_automate.cedar",
        include_str!("pack/never_automate.cedar"),
    ),
    (
        "blast_radius.cedar",
        include_str!("pack/blast_radius.cedar"),
    ),
    ("criticality.cedar", include_str!("pack/criticality.cedar")),
    ("evidence.cedar", include_str!("pack/evidence.cedar")),
];

/// The default pack's files as `(file name, text)`, for `countersign init` to write.
pub fn default_files() -> Vec<(&'static str, &'static str)> {
    DEFAULT_FILES.to_vec()
}

/// An optional module of the default pack, opted into with `countersign init --with NAME`.
/// A module is files: new ones, and replacements of default files whose rules it takes
/// over (Cedar has no way to lift a `forbid`, so a module that relaxes a default rule
/// ships that file without it). The result is an ordinary policy directory, read from the
/// base like any pack and proved by `policy verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PackModule {
    /// A high-criticality change proceeds with notification when trusted evidence covers
    /// its full plan with no failure and no regression (docs/policy.md).
    EarnedAutomation,
}

impl PackModule {
    pub const ALL: [PackModule; 1] = [PackModule::EarnedAutomation];

    /// The module's name, as `init --with` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            PackModule::EarnedAutomation => "earned-automation",
        }
    }

    /// The module's files as `(file name, text)`: a name shared with a default file
    /// replaces it.
    pub fn files(self) -> &'static [(&'static str, &'static str)] {
        match self {
            PackModule::EarnedAutomation => &EARNED_AUTOMATION_FILES,
        }
    }
}

const EARNED_AUTOMATION_FILES: [(&str, &str); 2] = [
    (
        "criticality.cedar",
        include_str!("pack/modules/earned_automation/criticality.cedar"),
    ),
    (
        "earned_automation.cedar",
        include_str!("pack/modules/earned_automation/earned_automation.cedar"),
    ),
];

impl fmt::Display for PackModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PackModule {
    type Err = String;

    fn from_str(name: &str) -> Result<PackModule, String> {
        PackModule::ALL
            .into_iter()
            .find(|m| m.as_str() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = PackModule::ALL.iter().map(|m| m.as_str()).collect();
                format!(
                    "unknown policy pack module {name:?}; known modules: {}",
                    known.join(", ")
                )
            })
    }
}

/// The default pack's files with `modules` applied, sorted by file name: what
/// `countersign init --with ...` writes.
pub fn default_files_with(modules: &[PackModule]) -> Vec<(&'static str, &'static str)> {
    let mut files: BTreeMap<&'static str, &'static str> = DEFAULT_FILES.into_iter().collect();
    for module in modules {
        files.extend(module.files().iter().copied());
    }
    files.into_iter().collect()
}

/// A pack that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("invalid policy pack ({} error(s)): {}", .diagnostics.len(), first(.diagnostics))]
    Invalid { diagnostics: Vec<PolicyDiagnostic> },
    #[error("{message}")]
    Engine { message: String },
}

fn first(diagnostics: &[PolicyDiagnostic]) -> String {
    diagnostics
        .first()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// Checked policies, the schema, and what decisions need precomputed.
pub struct PolicyPack {
    version: String,
    files: Vec<(String, String)>,
    pub(crate) set: PolicySet,
    pub(crate) policies: BTreeMap<String, PolicyInfo>,
    pub(crate) authorizer: Authorizer,
    pub(crate) author_type: EntityTypeName,
    pub(crate) resource: EntityUid,
    pub(crate) actions: [EntityUid; 4],
}

impl fmt::Debug for PolicyPack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyPack")
            .field("version", &self.version)
            .field("policies", &self.policies.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl PolicyPack {
    /// The embedded default pack.
    pub fn default_pack() -> PolicyPack {
        let files = DEFAULT_FILES
            .iter()
            .map(|(path, text)| ((*path).to_owned(), (*text).to_owned()))
            .collect();
        #[expect(
            clippy::expect_used,
            reason = "the embedded pack and schema are fixed text, checked by the crate's tests"
        )]
        PolicyPack::from_files(files).expect("the embedded default policy pack is valid")
    }

    /// The embedded default pack with `modules` applied.
    pub fn default_with(modules: &[PackModule]) -> Result<PolicyPack, PolicyError> {
        PolicyPack::from_files(
            default_files_with(modules)
                .into_iter()
                .map(|(path, text)| (path.to_owned(), text.to_owned()))
                .collect(),
        )
    }

    /// Build a pack from `(path, text)` pairs (a policy directory's `.cedar` files, read by
    /// the caller). Any error-severity diagnostic makes the pack unusable; warnings do not.
    pub fn from_files(files: Vec<(String, String)>) -> Result<PolicyPack, PolicyError> {
        let mut files = files;
        files.sort();
        let schema = crate::schema::schema().map_err(|message| PolicyError::Engine { message })?;
        let (loaded, diagnostics) = load(&files, &schema);
        let errors: Vec<PolicyDiagnostic> = diagnostics
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        if !errors.is_empty() {
            return Err(PolicyError::Invalid {
                diagnostics: errors,
            });
        }
        let engine = |what: &str, error: &dyn fmt::Display| PolicyError::Engine {
            message: format!("cannot build {what}: {error}"),
        };
        let author_type = EntityTypeName::from_str("Countersign::Author")
            .map_err(|e| engine("the author entity type", &e))?;
        let resource = EntityUid::from_type_name_and_id(
            EntityTypeName::from_str("Countersign::Change")
                .map_err(|e| engine("the change entity type", &e))?,
            EntityId::new("change"),
        );
        let action_type = EntityTypeName::from_str("Countersign::Action")
            .map_err(|e| engine("the action entity type", &e))?;
        let actions = Tier::ALL.map(|tier| {
            EntityUid::from_type_name_and_id(action_type.clone(), EntityId::new(tier.as_str()))
        });
        Ok(PolicyPack {
            version: version_of(&files),
            files,
            set: loaded.set,
            policies: loaded.policies,
            authorizer: Authorizer::new(),
            author_type,
            resource,
            actions,
        })
    }

    /// Hex sha256 over the sorted `(path, text)` pairs: two packs with the same files have
    /// the same version whatever order they were read in.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The pack's files, sorted by path.
    pub fn files(&self) -> &[(String, String)] {
        &self.files
    }

    /// The ids of the pack's policies, sorted.
    pub fn policy_ids(&self) -> impl Iterator<Item = &str> {
        self.policies.keys().map(String::as_str)
    }
}

fn version_of(sorted_files: &[(String, String)]) -> String {
    let mut hasher = Sha256::new();
    // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
    for (path, text) in sorted_files {
        for part in [path.as_bytes(), text.as_bytes()] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
    }
    hex::encode(hasher.finalize())
}
