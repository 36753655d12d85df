//! RFC 8785 JSON Canonicalization Scheme (JCS) of a `serde_json::Value`: object members
//! sorted by the UTF-16 code units of their names, numbers in ECMAScript's shortest form,
//! strings with the minimal escapes of `JSON.stringify`, no whitespace.
//!
//! Implemented here rather than pulled in: it is short, and the audit log's leaf bytes must
//! not change under us with a dependency update. Integers beyond ±2⁵³ are refused instead of
//! being rounded to the nearest double as JCS would do, because an audit record must not
//! silently change a value; put such numbers in strings.

use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

/// Why a value has no canonical form. `pointer` is the RFC 6901 JSON pointer of the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    #[error(
        "number at {pointer:?} is {number}, outside the exactly representable range ±2^53; encode it as a string"
    )]
    UnsafeInteger { pointer: String, number: String },
    #[error("number at {pointer:?} is not finite")]
    NonFinite { pointer: String },
}

/// The largest integer every double between it and zero represents exactly (2⁵³).
const MAX_SAFE: u64 = 1 << 53;

/// The RFC 8785 canonical bytes of `value`.
pub fn canonicalize(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = String::new();
    let mut pointer = String::new();
    write_value(value, &mut out, &mut pointer)?;
    Ok(out.into_bytes())
}

fn write_value(
    value: &Value,
    out: &mut String,
    pointer: &mut String,
) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_number(number, out, pointer)?,
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let len = pointer.len();
                let _ = write!(pointer, "/{i}");
                write_value(item, out, pointer)?;
                pointer.truncate(len);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(map, out, pointer)?,
    }
    Ok(())
}

fn write_object(
    map: &Map<String, Value>,
    out: &mut String,
    pointer: &mut String,
) -> Result<(), CanonicalError> {
    let mut members: Vec<(&String, &Value)> = map.iter().collect();
    // RFC 8785 §3.2.3: compare names as arrays of UTF-16 code units, not as UTF-8 bytes or
    // code points (they differ above U+FFFF against U+E000..U+FFFF).
    members.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
    out.push('{');
    for (i, (name, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(name, out);
        out.push(':');
        let len = pointer.len();
        pointer.push('/');
        pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
        write_value(value, out, pointer)?;
        pointer.truncate(len);
    }
    out.push('}');
    Ok(())
}

fn write_number(number: &Number, out: &mut String, pointer: &str) -> Result<(), CanonicalError> {
    if let Some(n) = number.as_u64() {
        if n > MAX_SAFE {
            return Err(CanonicalError::UnsafeInteger {
                pointer: pointer.to_owned(),
                number: n.to_string(),
            });
        }
        let _ = write!(out, "{n}");
    } else if let Some(n) = number.as_i64() {
        if n.unsigned_abs() > MAX_SAFE {
            return Err(CanonicalError::UnsafeInteger {
                pointer: pointer.to_owned(),
                number: n.to_string(),
            });
        }
        let _ = write!(out, "{n}");
    } else {
        let Some(f) = number.as_f64().filter(|f| f.is_finite()) else {
            return Err(CanonicalError::NonFinite {
                pointer: pointer.to_owned(),
            });
        };
        out.push_str(&format_es6(f));
    }
    Ok(())
}

/// ECMAScript `Number.prototype.toString` for a finite double (ECMA-262 §6.1.6.1.20), which
/// RFC 8785 §3.2.2.3 adopts.
///
/// The digits are the shortest that round-trip, the closest of those to the exact value
/// (ties to even); the decimal point and exponent are then placed by ECMAScript's rules.
pub fn format_es6(value: f64) -> String {
    if value == 0.0 {
        // Both zeros print as "0".
        return "0".to_owned();
    }
    let magnitude = value.abs();
    let shortest = format!("{magnitude:e}");
    // `{:e}` finds the shortest length k, but when several k-digit strings round-trip it
    // does not always print the closest one (nor break ties to even) as ECMA-262 demands:
    // 0x43143ff3c1cb0959 prints as …206.3, JavaScript as …206.2. Exact formatting at k
    // digits is correctly rounded, half to even; it round-trips whenever any k-digit
    // string does, save at a power-of-two boundary, where the shortest form is kept.
    let k = shortest
        .split_once('e')
        .map_or(0, |(m, _)| m.chars().filter(char::is_ascii_digit).count());
    let closest = format!("{:.*e}", k.saturating_sub(1), magnitude);
    let scientific = if closest.parse::<f64>() == Ok(magnitude) {
        closest
    } else {
        shortest
    };
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exponent: i32 = exponent.parse().unwrap_or(0);
    // ECMA-262 names: k digits, decimal point after n of them.
    let k = digits.len() as i32;
    let n = exponent + 1;

    let mut out = String::new();
    if value < 0.0 {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = n - 1;
        let _ = write!(out, "e{}{}", if e < 0 { '-' } else { '+' }, e.abs());
    }
    out
}

/// Strings as `JSON.stringify` writes them: escape `"`, `\` and the C0 controls (short forms
/// where JSON has them, else `\u00xx` in lower case), everything else as is.
fn write_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
