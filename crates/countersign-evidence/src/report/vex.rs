//! VEX documents, OpenVEX (v0.2.0 and the earlier v0.0.x shapes) and CycloneDX VEX
//! (`vulnerabilities[].analysis`), read into one model: which products a vulnerability
//! affects or not, and why.
//!
//! VEX documents are small (a statement per vulnerability and product), so they are read
//! whole. This module does not decide reachability; it only says what the VEX claims, and
//! [`VexDocument::check_products`] refuses claims about products the caller does not know.
//!
//! Refused: not JSON, neither an OpenVEX `@context` nor `bomFormat: CycloneDX`, a status or
//! state outside the format's list, an OpenVEX `not_affected` with neither `justification` nor
//! `impact_statement` (OpenVEX makes one of them a MUST), a statement with no vulnerability.

use std::collections::BTreeMap;
use std::io::BufRead;

use serde::Deserialize;
use serde_json::Value;

use super::ReportError;

/// The four VEX statuses (CycloneDX states are mapped onto them, see [`VexStatus::from_cyclonedx`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VexStatus {
    NotAffected,
    Affected,
    Fixed,
    UnderInvestigation,
}

impl VexStatus {
    fn from_openvex(text: &str) -> Option<Self> {
        Some(match text {
            "not_affected" => Self::NotAffected,
            "affected" => Self::Affected,
            "fixed" => Self::Fixed,
            "under_investigation" => Self::UnderInvestigation,
            _ => return None,
        })
    }

    /// CycloneDX `analysis.state`: `not_affected` and `false_positive` are not affected,
    /// `exploitable` is affected, `resolved` and `resolved_with_pedigree` are fixed,
    /// `in_triage` is under investigation.
    pub fn from_cyclonedx(text: &str) -> Option<Self> {
        Some(match text {
            "not_affected" | "false_positive" => Self::NotAffected,
            "exploitable" => Self::Affected,
            "resolved" | "resolved_with_pedigree" => Self::Fixed,
            "in_triage" => Self::UnderInvestigation,
            _ => return None,
        })
    }
}

/// Which format a document came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VexFormat {
    OpenVex,
    CycloneDx,
}

/// One claim: `vulnerability` has `status` in each of `products`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VexStatement {
    pub vulnerability: String,
    pub aliases: Vec<String>,
    /// Product identifiers (purls or ids) as the document gives them; CycloneDX `bom-ref`s are
    /// resolved to the component's purl when the BOM lists it.
    pub products: Vec<String>,
    pub status: VexStatus,
    /// The format's justification keyword, verbatim (OpenVEX `vulnerable_code_not_present`,
    /// CycloneDX `code_not_reachable`, ...).
    pub justification: Option<String>,
    pub impact_statement: Option<String>,
}

/// A VEX document in the common model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VexDocument {
    pub format: VexFormat,
    pub statements: Vec<VexStatement>,
}

impl VexDocument {
    /// Refuses the document if a statement names a product `is_known` does not recognise: a
    /// claim about something outside the system graph cannot be applied and must not be
    /// silently dropped.
    pub fn check_products(
        &self,
        file: &str,
        is_known: impl Fn(&str) -> bool,
    ) -> Result<(), ReportError> {
        for (i, statement) in self.statements.iter().enumerate() {
            for (j, product) in statement.products.iter().enumerate() {
                if !is_known(product) {
                    return Err(ReportError::UnknownProduct {
                        file: file.to_owned(),
                        field: format!("statements[{i}].products[{j}]"),
                        vulnerability: statement.vulnerability.clone(),
                        product: product.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

impl VexStatus {
    /// The OpenVEX spelling.
    pub fn as_openvex(self) -> &'static str {
        match self {
            VexStatus::NotAffected => "not_affected",
            VexStatus::Affected => "affected",
            VexStatus::Fixed => "fixed",
            VexStatus::UnderInvestigation => "under_investigation",
        }
    }
}

/// The OpenVEX justification closest to a CycloneDX one; other values pass through.
fn openvex_justification(format: VexFormat, justification: &str) -> &str {
    if format != VexFormat::CycloneDx {
        return justification;
    }
    match justification {
        "code_not_present" => "vulnerable_code_not_present",
        "code_not_reachable" => "vulnerable_code_not_in_execute_path",
        "requires_configuration" | "requires_dependency" | "requires_environment" => {
            "vulnerable_code_cannot_be_controlled_by_adversary"
        }
        "protected_by_compiler"
        | "protected_at_runtime"
        | "protected_at_perimeter"
        | "protected_by_mitigating_control" => "inline_mitigations_already_exist",
        other => other,
    }
}

impl VexDocument {
    /// One OpenVEX v0.2.0 document holding these statements (CycloneDX justifications mapped
    /// to OpenVEX's), the body of an OpenVEX predicate. `id`, `author` and `timestamp` are
    /// the document's required metadata; this crate keeps no clock, so the caller gives them.
    pub fn to_openvex(&self, id: &str, author: &str, timestamp: &str) -> Value {
        let statements: Vec<Value> = self
            .statements
            .iter()
            .map(|s| {
                let mut vulnerability = serde_json::Map::new();
                vulnerability.insert("name".into(), Value::String(s.vulnerability.clone()));
                if !s.aliases.is_empty() {
                    vulnerability.insert("aliases".into(), serde_json::json!(s.aliases));
                }
                let mut statement = serde_json::Map::new();
                statement.insert("vulnerability".into(), Value::Object(vulnerability));
                statement.insert(
                    "products".into(),
                    Value::Array(
                        s.products
                            .iter()
                            .map(|p| serde_json::json!({"@id": p}))
                            .collect(),
                    ),
                );
                statement.insert("status".into(), Value::from(s.status.as_openvex()));
                if let Some(j) = &s.justification {
                    statement.insert(
                        "justification".into(),
                        Value::from(openvex_justification(self.format, j)),
                    );
                }
                if let Some(i) = &s.impact_statement {
                    statement.insert("impact_statement".into(), Value::from(i.as_str()));
                }
                Value::Object(statement)
            })
            .collect();
        serde_json::json!({
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": id,
            "author": author,
            "timestamp": timestamp,
            "version": 1,
            "statements": statements,
        })
    }
}

/// Reads an OpenVEX or CycloneDX VEX document, telling them apart by their markers.
pub fn parse(file: &str, reader: impl BufRead) -> Result<VexDocument, ReportError> {
    let value: Value = serde_json::from_reader(reader).map_err(|e| ReportError::Malformed {
        file: file.to_owned(),
        line: e.line() as u64,
        column: e.column() as u64,
        what: super::strip_position(&e.to_string()),
    })?;
    let is_openvex = value
        .get("@context")
        .and_then(Value::as_str)
        .is_some_and(|c| c.starts_with("https://openvex.dev/ns"));
    let is_cyclonedx = value.get("bomFormat").and_then(Value::as_str) == Some("CycloneDX");
    let (result, format) = if is_openvex {
        (openvex_from_value(value), "OpenVEX")
    } else if is_cyclonedx {
        (cyclonedx_from_value(value), "CycloneDX")
    } else {
        return Err(ReportError::Invalid {
            file: file.to_owned(),
            field: "@context / bomFormat".to_owned(),
            what: "neither an OpenVEX nor a CycloneDX document".to_owned(),
        });
    };
    result.map_err(|e| ReportError::Invalid {
        file: file.to_owned(),
        field: e.field,
        what: format!("{format}: {}", e.what),
    })
}

/// Where a VEX value is wrong, before a file name is attached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {what}")]
pub struct VexError {
    pub field: String,
    pub what: String,
}

fn vex_error(field: impl Into<String>, what: impl Into<String>) -> VexError {
    VexError {
        field: field.into(),
        what: what.into(),
    }
}

#[derive(Deserialize)]
struct OpenVexWire {
    #[serde(default)]
    statements: Vec<OpenVexStatement>,
}

#[derive(Deserialize)]
struct OpenVexStatement {
    vulnerability: Option<OpenVexVulnerability>,
    #[serde(default)]
    products: Vec<OpenVexProduct>,
    status: String,
    #[serde(default)]
    justification: Option<String>,
    #[serde(default)]
    impact_statement: Option<String>,
}

// v0.0.x wrote the vulnerability and products as plain strings; v0.2.0 as objects.
#[derive(Deserialize)]
#[serde(untagged)]
enum OpenVexVulnerability {
    Name(String),
    Object {
        #[serde(default)]
        name: Option<String>,
        #[serde(default, rename = "@id")]
        id: Option<String>,
        #[serde(default)]
        aliases: Vec<String>,
    },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OpenVexProduct {
    Id(String),
    Object {
        #[serde(default, rename = "@id")]
        id: Option<String>,
        #[serde(default)]
        identifiers: BTreeMap<String, String>,
    },
}

/// Reads an OpenVEX document from JSON (also the body of an OpenVEX predicate).
pub fn openvex_from_value(value: Value) -> Result<VexDocument, VexError> {
    let wire: OpenVexWire =
        serde_json::from_value(value).map_err(|e| vex_error("statements", e.to_string()))?;
    let mut statements = Vec::with_capacity(wire.statements.len());
    for (i, s) in wire.statements.into_iter().enumerate() {
        let field = |name: &str| format!("statements[{i}].{name}");
        let (vulnerability, aliases) = match s.vulnerability {
            Some(OpenVexVulnerability::Name(name)) => (Some(name), Vec::new()),
            Some(OpenVexVulnerability::Object { name, id, aliases }) => (name.or(id), aliases),
            None => (None, Vec::new()),
        };
        let vulnerability =
            vulnerability.ok_or_else(|| vex_error(field("vulnerability"), "missing name"))?;
        let status = VexStatus::from_openvex(&s.status).ok_or_else(|| {
            vex_error(
                field("status"),
                format!(
                    "{:?} is not not_affected, affected, fixed or under_investigation",
                    s.status
                ),
            )
        })?;
        if status == VexStatus::NotAffected
            && s.justification.is_none()
            && s.impact_statement.is_none()
        {
            return Err(vex_error(
                field("justification"),
                "not_affected needs a justification or an impact_statement",
            ));
        }
        let products = s
            .products
            .into_iter()
            .enumerate()
            .map(|(j, p)| match p {
                OpenVexProduct::Id(id) => Ok(id),
                OpenVexProduct::Object { id, identifiers } => id
                    .or_else(|| identifiers.get("purl").cloned())
                    .ok_or_else(|| vex_error(field(&format!("products[{j}]")), "no @id or purl")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        statements.push(VexStatement {
            vulnerability,
            aliases,
            products,
            status,
            justification: s.justification,
            impact_statement: s.impact_statement,
        });
    }
    Ok(VexDocument {
        format: VexFormat::OpenVex,
        statements,
    })
}

#[derive(Deserialize)]
struct CycloneDxWire {
    #[serde(default)]
    metadata: Option<CycloneDxMetadata>,
    #[serde(default)]
    components: Vec<CycloneDxComponent>,
    #[serde(default)]
    vulnerabilities: Vec<CycloneDxVulnerability>,
}

#[derive(Deserialize)]
struct CycloneDxMetadata {
    #[serde(default)]
    component: Option<CycloneDxComponent>,
}

#[derive(Deserialize)]
struct CycloneDxComponent {
    #[serde(default, rename = "bom-ref")]
    bom_ref: Option<String>,
    #[serde(default)]
    purl: Option<String>,
}

#[derive(Deserialize)]
struct CycloneDxVulnerability {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    analysis: Option<CycloneDxAnalysis>,
    #[serde(default)]
    affects: Vec<CycloneDxAffects>,
    #[serde(default)]
    references: Vec<CycloneDxReference>,
}

#[derive(Deserialize)]
struct CycloneDxAnalysis {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    justification: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

#[derive(Deserialize)]
struct CycloneDxAffects {
    #[serde(rename = "ref")]
    reference: String,
}

#[derive(Deserialize)]
struct CycloneDxReference {
    #[serde(default)]
    id: Option<String>,
}

fn cyclonedx_from_value(value: Value) -> Result<VexDocument, VexError> {
    let wire: CycloneDxWire =
        serde_json::from_value(value).map_err(|e| vex_error("vulnerabilities", e.to_string()))?;
    let purl_of: BTreeMap<String, String> = wire
        .metadata
        .and_then(|m| m.component)
        .into_iter()
        .chain(wire.components)
        .filter_map(|c| Some((c.bom_ref?, c.purl?)))
        .collect();
    let mut statements = Vec::with_capacity(wire.vulnerabilities.len());
    for (i, v) in wire.vulnerabilities.into_iter().enumerate() {
        let field = |name: &str| format!("vulnerabilities[{i}].{name}");
        let vulnerability = v.id.ok_or_else(|| vex_error(field("id"), "missing"))?;
        // A vulnerability listed without analysis is a finding nobody has assessed yet.
        let (status, justification, detail) = match v.analysis {
            Some(a) => {
                let status = match a.state.as_deref() {
                    Some(state) => VexStatus::from_cyclonedx(state).ok_or_else(|| {
                        vex_error(
                            field("analysis.state"),
                            format!("{state:?} is not a CycloneDX analysis state"),
                        )
                    })?,
                    None => VexStatus::UnderInvestigation,
                };
                (status, a.justification, a.detail)
            }
            None => (VexStatus::UnderInvestigation, None, None),
        };
        let products = v
            .affects
            .into_iter()
            .map(|a| purl_of.get(&a.reference).cloned().unwrap_or(a.reference))
            .collect();
        statements.push(VexStatement {
            vulnerability,
            aliases: v.references.into_iter().filter_map(|r| r.id).collect(),
            products,
            status,
            justification,
            impact_statement: detail,
        });
    }
    Ok(VexDocument {
        format: VexFormat::CycloneDx,
        statements,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(json: &str) -> String {
        match parse("t.json", json.as_bytes()) {
            Ok(doc) => format!("{doc:#?}"),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn openvex_v020_and_v001_shapes() {
        insta::assert_snapshot!(check(
            r#"{
          "@context": "https://openvex.dev/ns/v0.2.0", "@id": "https://x/vex-1", "author": "a",
          "timestamp": "2024-01-01T00:00:00Z", "version": 1,
          "statements": [
            {"vulnerability": {"name": "CVE-2023-1", "aliases": ["GHSA-x"]},
             "products": [{"@id": "pkg:cargo/shop@1.0.0"}, {"identifiers": {"purl": "pkg:npm/web@2"}}],
             "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path"},
            {"vulnerability": "CVE-2023-2", "products": ["pkg:cargo/shop@1.0.0"], "status": "affected"}
          ]
        }"#
        ));
    }

    #[test]
    fn cyclonedx_vex() {
        insta::assert_snapshot!(check(
            r#"{
          "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
          "components": [{"bom-ref": "c1", "type": "library", "name": "shop", "purl": "pkg:cargo/shop@1.0.0"}],
          "vulnerabilities": [
            {"id": "CVE-2023-1", "analysis": {"state": "not_affected", "justification": "code_not_reachable", "detail": "never called"},
             "affects": [{"ref": "c1"}, {"ref": "urn:cdx:other"}]},
            {"id": "CVE-2023-3", "affects": [{"ref": "c1"}]}
          ]
        }"#
        ));
    }

    #[test]
    fn refusals() {
        insta::assert_snapshot!(check(r#"{"@context": "https://openvex.dev/ns/v0.2.0", "statements": [{"vulnerability": {"name": "C"}, "products": [], "status": "not_affected"}]}"#), @"error: t.json: statements[0].justification: OpenVEX: not_affected needs a justification or an impact_statement");
        insta::assert_snapshot!(check(r#"{"@context": "https://openvex.dev/ns/v0.2.0", "statements": [{"vulnerability": {"name": "C"}, "status": "maybe"}]}"#), @r#"error: t.json: statements[0].status: OpenVEX: "maybe" is not not_affected, affected, fixed or under_investigation"#);
        insta::assert_snapshot!(check(r#"{"bomFormat": "CycloneDX", "vulnerabilities": [{"id": "C", "analysis": {"state": "fine"}}]}"#), @r#"error: t.json: vulnerabilities[0].analysis.state: CycloneDX: "fine" is not a CycloneDX analysis state"#);
        insta::assert_snapshot!(check(r#"{"hello": 1}"#), @"error: t.json: @context / bomFormat: neither an OpenVEX nor a CycloneDX document");
        insta::assert_snapshot!(check(r#"{"@context": "https://openvex.dev/ns/v0.2.0", "statem"#), @"error: t.json:1:53: EOF while parsing a string");
    }

    #[test]
    fn unknown_product_is_refused() {
        let doc = parse(
            "vex.json",
            br#"{"@context": "https://openvex.dev/ns/v0.2.0", "statements": [
              {"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "pkg:cargo/shop@1"}, {"@id": "pkg:npm/ghost@1"}], "status": "affected"}]}"#
                .as_slice(),
        )
        .unwrap();
        let err = doc
            .check_products("vex.json", |p| p == "pkg:cargo/shop@1")
            .unwrap_err();
        insta::assert_snapshot!(err.to_string(), @"vex.json: statements[0].products[1]: VEX statement for CVE-1 names unknown product pkg:npm/ghost@1");
        assert!(doc.check_products("vex.json", |_| true).is_ok());
    }

    #[test]
    fn cyclonedx_becomes_an_openvex_predicate_that_reads_back() {
        let doc = parse(
            "cdx.json",
            br#"{"bomFormat": "CycloneDX", "specVersion": "1.5",
              "components": [{"bom-ref": "c1", "purl": "pkg:cargo/shop@1.0.0"}],
              "vulnerabilities": [{"id": "CVE-1", "analysis": {"state": "not_affected", "justification": "code_not_reachable"}, "affects": [{"ref": "c1"}]}]}"#
                .as_slice(),
        )
        .unwrap();
        let value = doc.to_openvex("urn:x", "countersign", "2026-01-01T00:00:00Z");
        assert_eq!(
            value["statements"][0],
            serde_json::json!({"vulnerability": {"name": "CVE-1"}, "products": [{"@id": "pkg:cargo/shop@1.0.0"}],
                "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path"})
        );
        let back = openvex_from_value(value).unwrap();
        assert_eq!(back.statements[0].products, doc.statements[0].products);
        assert_eq!(back.statements[0].status, VexStatus::NotAffected);
    }
}
