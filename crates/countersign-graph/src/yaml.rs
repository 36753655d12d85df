//! YAML text into values, with every resource bounded: the one YAML reader of the graph
//! (catalog files, `pnpm-workspace.yaml`).
//!
//! Built on granit-parser's event stream rather than a serde YAML crate because the value
//! is built here, event by event, where each bound can be checked before memory is spent:
//! nesting depth (also the scanner's own flow-nesting limit, so `[[[[…` costs nothing
//! before it is refused), and the bytes that aliases copy (a thousand aliases of a
//! megabyte scalar are refused, not materialised). libyaml, under serde_norway, could
//! bound neither: deep flow nesting is quadratic in its scanner.
//!
//! Semantics are the YAML 1.2 core schema as far as a catalog needs them: plain `null`,
//! `~` and empty are null, `true`/`false` (any case form the schema allows) are booleans,
//! every other scalar is a string (numbers keep their text: a catalog field is text, and a
//! 29-digit name is a name, not an overflow). Merge keys (`<<`) are refused rather than
//! applied, because Backstage (YAML 1.2) does not apply them either: a catalog must read
//! the same here as in Backstage. Tags are ignored. Duplicate keys are errors.

use std::collections::HashMap;

use granit_parser::{Event, Options, Parser, ScalarStyle, ScanError, Span};
use serde_json::{Map, Value};

use crate::error::GraphError;
use crate::limits::Limits;

/// One document of a stream and the line its content starts on.
#[derive(Debug)]
pub struct Document {
    pub value: Value,
    /// 1-based line of the document's root node.
    pub line: u32,
}

/// A collection being built.
enum Frame {
    Seq {
        items: Vec<Value>,
        anchor: usize,
        size: u64,
    },
    Map {
        map: Map<String, Value>,
        /// The key waiting for its value, and the line it is on.
        key: Option<(String, u32)>,
        anchor: usize,
        size: u64,
    },
}

fn line_of(span: &Span) -> u32 {
    u32::try_from(span.start.line()).unwrap_or(u32::MAX)
}

/// Parses every document of `text` (a file named `file`), within `limits`. Empty documents
/// are skipped.
pub fn documents(file: &str, text: &str, limits: &Limits) -> Result<Vec<Document>, GraphError> {
    let mut options = Options::default();
    options.emit_comments = false;
    options.flow_nesting_limit = limits.yaml_depth;
    let parser = Parser::new_from_str_with_options(text, options);

    let depth_error = |line: u32| GraphError::Limit {
        file: file.to_string(),
        line,
        what: format!("YAML nested deeper than {} levels", limits.yaml_depth),
        limit: "yaml_depth",
        max: limits.yaml_depth as u64,
    };
    let syntax_error = |e: ScanError| {
        let line = u32::try_from(e.marker().line()).unwrap_or(u32::MAX);
        if matches!(e.kind(), granit_parser::ErrorKind::RecursionLimitExceeded) {
            return depth_error(line);
        }
        GraphError::Yaml {
            file: file.to_string(),
            line,
            column: u32::try_from(e.marker().col() + 1).unwrap_or(u32::MAX),
            message: e.info(),
        }
    };
    let field_error = |line: u32, field: &str, message: String| GraphError::Field {
        file: file.to_string(),
        line,
        field: field.to_string(),
        message,
    };

    let mut out = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    // Anchored nodes by id, with their size, for aliases; per document.
    let mut anchors: HashMap<usize, (Value, u64)> = HashMap::new();
    let mut alias_bytes: u64 = 0;
    let mut root_line: Option<u32> = None;
    for event in parser {
        let (event, span) = event.map_err(syntax_error)?;
        let line = line_of(&span);
        // A finished node: (value, its size, its anchor id or 0).
        let done: Option<(Value, u64, usize)> = match event {
            Event::StreamStart | Event::StreamEnd | Event::Comment(..) => None,
            Event::DocumentStart(..) => {
                anchors.clear();
                root_line = None;
                None
            }
            Event::DocumentEnd => None,
            Event::Alias(id) => {
                let Some((value, size)) = anchors.get(&id) else {
                    return Err(syntax_error_at(file, line, &span, "unknown alias"));
                };
                alias_bytes = alias_bytes.saturating_add(*size);
                if alias_bytes > limits.yaml_alias_bytes {
                    return Err(GraphError::Limit {
                        file: file.to_string(),
                        line,
                        what: format!(
                            "YAML aliases copy more than {} bytes",
                            limits.yaml_alias_bytes
                        ),
                        limit: "yaml_alias_bytes",
                        max: limits.yaml_alias_bytes,
                    });
                }
                Some((value.clone(), *size, 0))
            }
            Event::Scalar(text, style, anchor, tag) => {
                let size = text.len() as u64 + 1;
                let value = if style == ScalarStyle::Plain && tag.is_none() {
                    resolve_plain(&text)
                } else {
                    Value::String(text.into_owned())
                };
                Some((value, size, anchor))
            }
            Event::SequenceStart(_, anchor, _) | Event::MappingStart(_, anchor, _) => {
                if stack.len() >= limits.yaml_depth {
                    return Err(depth_error(line));
                }
                root_line.get_or_insert(line);
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq {
                        items: Vec::new(),
                        anchor,
                        size: 1,
                    }
                } else {
                    Frame::Map {
                        map: Map::new(),
                        key: None,
                        anchor,
                        size: 1,
                    }
                });
                None
            }
            // Events a later parser version may add carry no data a catalog reads.
            _ if !matches!(event, Event::SequenceEnd | Event::MappingEnd) => None,
            _ => match stack.pop() {
                Some(Frame::Seq {
                    items,
                    anchor,
                    size,
                }) => Some((Value::Array(items), size, anchor)),
                Some(Frame::Map {
                    map, anchor, size, ..
                }) => Some((Value::Object(map), size, anchor)),
                None => None,
            },
        };
        let Some((value, size, anchor)) = done else {
            continue;
        };
        if anchor != 0 {
            anchors.insert(anchor, (value.clone(), size));
        }
        match stack.last_mut() {
            None => {
                let line = *root_line.get_or_insert(line);
                if !value.is_null() {
                    out.push(Document { value, line });
                }
            }
            Some(Frame::Seq { items, size: s, .. }) => {
                *s = s.saturating_add(size);
                items.push(value);
            }
            Some(Frame::Map {
                map, key, size: s, ..
            }) => {
                *s = s.saturating_add(size);
                match key.take() {
                    None => {
                        let k = match value {
                            Value::String(k) => k,
                            Value::Null => String::new(),
                            Value::Bool(b) => b.to_string(),
                            _ => {
                                return Err(field_error(
                                    line,
                                    "(mapping key)",
                                    "a mapping key must be a scalar".into(),
                                ));
                            }
                        };
                        if k == "<<" {
                            return Err(field_error(
                                line,
                                "<<",
                                "YAML merge keys (`<<`) are not supported: Backstage does not \
                                 apply them either; write the keys out"
                                    .into(),
                            ));
                        }
                        *key = Some((k, line));
                    }
                    Some((k, key_line)) => {
                        if map.contains_key(&k) {
                            return Err(field_error(
                                key_line,
                                &k,
                                "duplicate key in one mapping".into(),
                            ));
                        }
                        map.insert(k, value);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The line of the mapping key at `path` (keys from the document's root) in the document
/// of `text` whose root node starts on `root_line`, or of the deepest key of `path` that is
/// there: an error about a field, even a missing one, points at the key nearest to it. A
/// path does not pass through sequences. Parses `text` again, so it is for reporting an
/// error only, never the happy path; `None` when not even the first key is found.
pub fn key_line(text: &str, root_line: u32, path: &[&str]) -> Option<u32> {
    /// An open collection: a sequence, or a mapping with the key whose value is being read.
    enum Open {
        Seq,
        Map(Option<String>),
    }
    let mut options = Options::default();
    options.emit_comments = false;
    let mut stack: Vec<Open> = Vec::new();
    let mut target = false;
    let mut root_seen = false;
    let mut best: Option<(usize, u32)> = None;
    for event in Parser::new_from_str_with_options(text, options) {
        let Ok((event, span)) = event else {
            break;
        };
        let line = line_of(&span);
        let is_node = matches!(
            event,
            Event::Scalar(..)
                | Event::Alias(..)
                | Event::SequenceStart(..)
                | Event::MappingStart(..)
        );
        if is_node && !root_seen {
            root_seen = true;
            target = line == root_line;
        }
        // A node is a key when its mapping has no key waiting.
        if is_node && matches!(stack.last(), Some(Open::Map(None))) {
            if target && let Event::Scalar(text, ..) = &event {
                let depth = stack.len();
                let on_path = depth <= path.len()
                    && path[depth - 1] == text.as_ref()
                    && stack[..depth - 1]
                        .iter()
                        .zip(path)
                        .all(|(open, part)| matches!(open, Open::Map(Some(k)) if k == part));
                if on_path && best.is_none_or(|(d, _)| d < depth) {
                    best = Some((depth, line));
                    if depth == path.len() {
                        break;
                    }
                }
            }
            let name = match &event {
                Event::Scalar(text, ..) => text.to_string(),
                _ => String::new(),
            };
            if let Some(Open::Map(key)) = stack.last_mut() {
                *key = Some(name);
            }
            if matches!(event, Event::Scalar(..) | Event::Alias(..)) {
                continue;
            }
        }
        let finished = match event {
            Event::DocumentStart(..) => {
                if target {
                    break;
                }
                stack.clear();
                root_seen = false;
                false
            }
            Event::SequenceStart(..) => {
                stack.push(Open::Seq);
                false
            }
            Event::MappingStart(..) => {
                stack.push(Open::Map(None));
                false
            }
            Event::SequenceEnd | Event::MappingEnd => {
                stack.pop();
                true
            }
            Event::Scalar(..) | Event::Alias(..) => true,
            _ => false,
        };
        // A finished value empties its mapping's key slot.
        if finished && let Some(Open::Map(key)) = stack.last_mut() {
            *key = None;
        }
    }
    best.map(|(_, line)| line)
}

fn syntax_error_at(file: &str, line: u32, span: &Span, message: &str) -> GraphError {
    GraphError::Yaml {
        file: file.to_string(),
        line,
        column: u32::try_from(span.start.col() + 1).unwrap_or(u32::MAX),
        message: message.to_string(),
    }
}

/// The core schema's null and booleans; everything else stays text.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ => Value::String(text.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> String {
        match documents("f.yaml", text, &Limits::default()) {
            Ok(docs) => docs
                .iter()
                .map(|d| format!("{}@{}", d.value, d.line))
                .collect::<Vec<_>>()
                .join(" | "),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn table() {
        let cases = [
            ("a: 1\nb: [x, 'y']\n", r#"{"a":"1","b":["x","y"]}@1"#),
            (
                "---\na: ~\n---\n\n# c\nb: true\n",
                r#"{"a":null}@2 | {"b":true}@6"#,
            ),
            ("\u{feff}a: b\n", r#"{"a":"b"}@1"#),
            (
                "name: 12345678901234567890123456789\n",
                r#"{"name":"12345678901234567890123456789"}@1"#,
            ),
            (
                "a: &x [1, 2]\nb: *x\n",
                r#"{"a":["1","2"],"b":["1","2"]}@1"#,
            ),
            ("---\n---\na: 1\n", r#"{"a":"1"}@3"#),
            (
                "base: &b {k: v}\nm:\n  <<: *b\n",
                "f.yaml:3: field `<<`: YAML merge keys (`<<`) are not supported: Backstage does not apply them either; write the keys out",
            ),
            (
                "a: 1\na: 2\n",
                "f.yaml:2: field `a`: duplicate key in one mapping",
            ),
            (
                "a: 1\nm:\n  x: 1\n  y: 2\n  x: 3\n",
                "f.yaml:5: field `x`: duplicate key in one mapping",
            ),
            (
                "a: [b\n",
                "f.yaml:1:4: malformed YAML: unclosed bracket '['",
            ),
        ];
        for (text, expect) in cases {
            assert_eq!(check(text), expect, "{text:?}");
        }
    }

    #[test]
    fn a_key_is_found_by_its_path_in_its_document() {
        let text = "\
a: 1
---
kind: Component
metadata:
  name: x
  annotations:
    other: [1, {name: no}]
    countersign.dev/paths: src/**
spec:
  owner: team
---
metadata:
  annotations:
    countersign.dev/paths: other
";
        let at = |root, path: &[&str]| key_line(text, root, path);
        assert_eq!(
            at(3, &["metadata", "annotations", "countersign.dev/paths"]),
            Some(8)
        );
        assert_eq!(
            at(12, &["metadata", "annotations", "countersign.dev/paths"]),
            Some(14)
        );
        assert_eq!(at(3, &["spec", "owner"]), Some(10));
        // A missing key: the deepest one that is there.
        assert_eq!(at(3, &["spec", "system"]), Some(9));
        assert_eq!(at(3, &["metadata", "name"]), Some(5));
        // A key inside a sequence item is not on a path of mapping keys.
        assert_eq!(at(3, &["metadata", "annotations", "name"]), Some(6));
        assert_eq!(at(3, &["nothing"]), None);
        assert_eq!(at(1, &["a"]), Some(1));
        assert_eq!(at(1, &["kind"]), None);
    }

    #[test]
    fn depth_and_aliases_are_bounded() {
        let deep = "[".repeat(200_000);
        assert!(
            check(&deep).contains("limit `yaml_depth`"),
            "{}",
            check(&deep)
        );
        let mut block = String::new();
        for i in 0..100 {
            block.push_str(&" ".repeat(i));
            block.push_str("a:\n");
        }
        assert!(
            check(&block).contains("limit `yaml_depth`"),
            "{}",
            check(&block)
        );
        let big = "x".repeat(1_000_000);
        let mut bomb = format!("a: &a {big}\nb: [");
        for _ in 0..3_000 {
            bomb.push_str("*a, ");
        }
        bomb.push_str("]\n");
        assert!(
            check(&bomb).contains("limit `yaml_alias_bytes`"),
            "{}",
            check(&bomb)
        );
    }
}
