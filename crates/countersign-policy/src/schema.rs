//! The Cedar schema countersign's policies are validated and evaluated against, embedded
//! from `schema.cedarschema`.
//!
//! The schema is fixed: users write policies, not schemas. What each attribute means is
//! in docs/policy.md; how the values are derived is in `facts`.

use cedar_policy::Schema;

/// Where the schema lives in this crate, for diagnostics about the schema itself.
pub(crate) const SCHEMA_PATH: &str = "countersign.cedarschema";

const SCHEMA_TEXT: &str = include_str!("schema.cedarschema");

/// The schema in Cedar schema syntax, e.g. for `countersign init` or `policy schema`.
pub fn schema_text() -> &'static str {
    SCHEMA_TEXT
}

/// Parse the embedded schema. It only fails if the embedded text is broken, which the
/// tests rule out; the error is a message rather than a Cedar type so it stays private.
pub(crate) fn schema() -> Result<Schema, String> {
    Schema::from_cedarschema_str(SCHEMA_TEXT)
        .map(|(schema, _warnings)| schema)
        .map_err(|error| format!("the embedded Cedar schema does not parse: {error}"))
}
