//! JUnit XML as Maven Surefire, pytest, jest-junit and cargo-nextest write it: a streaming
//! reader that yields each test case with its outcome and sums them up.
//!
//! The reader holds one XML event at a time (at most [`MAX_ITEM_BYTES`]) and a nesting
//! counter, so memory does not grow with the report. It never processes a DOCTYPE: a report
//! that has one is refused, which rules out entity expansion. Counts come from the test cases
//! themselves, not from the `tests=`/`failures=` attributes, which tools write inconsistently.
//!
//! A test's id is `classname::name`, or `name` alone when the classname is empty or equal to
//! the name (jest-junit's default writes both the same). Ids are what regressions compare
//! across commits.

use std::io::BufRead;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::{Bounded, MAX_ITEM_BYTES, OVER_LIMIT, ReportError};

/// Deeper nesting than this is refused; the reader keeps a stack of open element names.
const MAX_DEPTH: usize = 64;

/// What happened to one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    Passed,
    /// `<failure>` (or Surefire's `<rerunFailure>`): an assertion failed.
    Failed,
    /// `<error>`: the test could not run to an assertion.
    Errored,
    /// `<skipped>`.
    Skipped,
    /// Passed on a retry after failing (`<flakyFailure>`/`<flakyError>`, Surefire and nextest).
    Flaky,
}

/// One test case.
#[derive(Debug, Clone, PartialEq)]
pub struct TestCase {
    pub id: String,
    pub outcome: Outcome,
    /// Seconds, when the report says.
    pub time: Option<f64>,
    /// What the first `<failure>` or `<error>` of the case says: its `message` attribute, or
    /// else the first non-blank line of its text; control characters replaced and at most
    /// [`MAX_MESSAGE_CHARS`] characters. The text is the tested code's own output, so it is
    /// shown as data, never trusted.
    pub message: Option<String>,
}

/// The longest failure message kept, in characters.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// A failure message as it is kept: control characters (a terminal's escape sequences among
/// them) become U+FFFD, except newlines and tabs; surrounding blank space trimmed; cut at
/// [`MAX_MESSAGE_CHARS`] characters with an ellipsis. `None` when nothing is left.
pub fn clean_message(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(raw.len().min(MAX_MESSAGE_CHARS * 4));
    for (count, c) in raw.chars().enumerate() {
        if count == MAX_MESSAGE_CHARS {
            out.push('…');
            break;
        }
        out.push(match c {
            '\n' | '\t' => c,
            '\r' => '\n',
            c if c.is_control() => '\u{FFFD}',
            c => c,
        });
    }
    Some(out)
}

/// Totals over a report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JunitSummary {
    pub tests: u64,
    pub passed: u64,
    pub failed: u64,
    pub errored: u64,
    pub skipped: u64,
    pub flaky: u64,
    /// Sum of test case times, in seconds.
    pub time: f64,
}

impl JunitSummary {
    fn add(&mut self, case: &TestCase) {
        self.tests += 1;
        match case.outcome {
            Outcome::Passed => self.passed += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Errored => self.errored += 1,
            Outcome::Skipped => self.skipped += 1,
            Outcome::Flaky => self.flaky += 1,
        }
        self.time += case.time.unwrap_or(0.0);
    }
}

/// A whole report in memory: the totals and every case.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JunitReport {
    pub summary: JunitSummary,
    pub cases: Vec<TestCase>,
}

/// Reads a report into memory. For reports too large for that, use [`read`].
pub fn parse(file: &str, reader: impl BufRead) -> Result<JunitReport, ReportError> {
    let mut cases = Vec::new();
    let summary = read(file, reader, |case| cases.push(case))?;
    Ok(JunitReport { summary, cases })
}

/// Streams a report: `on_case` sees each test case as its element closes.
pub fn read(
    file: &str,
    mut reader: impl BufRead,
    mut on_case: impl FnMut(TestCase),
) -> Result<JunitSummary, ReportError> {
    super::refuse_utf16(file, &mut reader)?;
    let mut xml = Reader::from_reader(Bounded::new(reader, MAX_ITEM_BYTES));
    let config = xml.config_mut();
    config.check_end_names = true;
    config.expand_empty_elements = false;
    config.trim_text(false);

    let mut buf = Vec::new();
    let mut summary = JunitSummary::default();
    let mut depth = 0usize;
    let mut seen_root = false;
    // The open test case, if any, and the depth it opened at.
    let mut open: Option<(TestCase, usize)> = None;
    // The depth of an open `<failure>`/`<error>` whose text is the case's message (it had no
    // `message` attribute), until its first non-blank text.
    let mut message_at: Option<usize> = None;
    let mut message_text = String::new();
    // The name of the innermost open `<testsuite>` and the depth it opened at, for a
    // suite-level `<error>`/`<failure>`.
    let mut suites: Vec<(String, usize)> = Vec::new();

    loop {
        buf.clear();
        xml.get_mut().reset();
        // Where the event starts (whitespace before it is an event of its own): a DOCTYPE is
        // reported where it opens, not on the line its internal subset ends.
        let start = xml.get_ref().line();
        let event = match xml.read_event_into(&mut buf) {
            Ok(event) => event,
            Err(e) => return Err(xml_error(file, &xml, &e)),
        };
        let line = xml.get_ref().line();
        match event {
            Event::DocType(_) => {
                return Err(ReportError::EntityExpansion {
                    file: file.to_owned(),
                    line: start,
                });
            }
            Event::Start(ref element) | Event::Empty(ref element) => {
                let is_empty = matches!(event, Event::Empty(_));
                let name = element.local_name();
                let name = name.as_ref();
                if !seen_root {
                    if name != b"testsuites" && name != b"testsuite" {
                        return Err(ReportError::Invalid {
                            file: file.to_owned(),
                            field: "root element".to_owned(),
                            what: format!(
                                "expected <testsuites> or <testsuite>, found <{}>",
                                String::from_utf8_lossy(name)
                            ),
                        });
                    }
                    seen_root = true;
                }
                match name {
                    b"testcase" => {
                        if open.is_some() {
                            return Err(invalid(file, line, "<testcase> inside a <testcase>"));
                        }
                        let case = test_case(file, line, element)?;
                        if is_empty {
                            summary.add(&case);
                            on_case(case);
                        } else {
                            open = Some((case, depth));
                        }
                    }
                    b"testsuite" if !is_empty => {
                        suites.push((
                            attribute(file, line, element, b"name")?.unwrap_or_default(),
                            depth,
                        ));
                    }
                    // Outside any test case, an `<error>` or `<failure>` is the suite's own
                    // (setup, collection, a crash before any test ran): a failed test of its
                    // own, so the suite fails rather than reading as passed with no tests.
                    b"failure" | b"error" if open.is_none() => {
                        let suite = suites.last().map_or("", |(name, _)| name.as_str());
                        let case = TestCase {
                            id: format!("{SUITE_LEVEL_PREFIX}{suite}"),
                            outcome: if name == b"error" {
                                Outcome::Errored
                            } else {
                                Outcome::Failed
                            },
                            time: None,
                            message: attribute(file, line, element, b"message")?
                                .as_deref()
                                .and_then(clean_message),
                        };
                        if is_empty {
                            summary.add(&case);
                            on_case(case);
                        } else {
                            // Open until its element closes, so its text can be its message.
                            if case.message.is_none() {
                                message_at = Some(depth);
                            }
                            open = Some((case, depth));
                        }
                    }
                    b"failure" | b"rerunFailure" | b"rerunError" | b"error" => {
                        let outcome = if name == b"error" {
                            Outcome::Errored
                        } else {
                            Outcome::Failed
                        };
                        raise(&mut open, outcome);
                        if let Some((case, _)) = &mut open
                            && case.message.is_none()
                        {
                            case.message = attribute(file, line, element, b"message")?
                                .as_deref()
                                .and_then(clean_message);
                            if case.message.is_none() && !is_empty {
                                message_at = Some(depth);
                            }
                        }
                    }
                    b"skipped" => raise(&mut open, Outcome::Skipped),
                    b"flakyFailure" | b"flakyError" => raise(&mut open, Outcome::Flaky),
                    _ => {}
                }
                if !is_empty {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(invalid(
                            file,
                            line,
                            &format!("elements nested deeper than {MAX_DEPTH}"),
                        ));
                    }
                }
            }
            // A message from text: gathered (quick-xml reports `&amp;` and the like as
            // events of their own) up to the first line break after something non-blank.
            Event::Text(ref text) if message_at.is_some() => {
                let text = text
                    .decode()
                    .map_err(|e| invalid(file, line, &format!("text: {e}")))?;
                gather(&mut message_text, &text);
            }
            Event::CData(ref text) if message_at.is_some() => {
                gather(&mut message_text, &String::from_utf8_lossy(text));
            }
            Event::GeneralRef(ref reference) if message_at.is_some() => {
                let name = reference
                    .decode()
                    .map_err(|e| invalid(file, line, &format!("text: {e}")))?;
                if let Ok(Some(c)) = reference.resolve_char_ref() {
                    gather(&mut message_text, c.encode_utf8(&mut [0; 4]));
                } else if let Some(resolved) = quick_xml::escape::resolve_predefined_entity(&name) {
                    gather(&mut message_text, resolved);
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if message_at == Some(depth) {
                    message_at = None;
                    if let Some((case, _)) = &mut open {
                        case.message = message_text
                            .lines()
                            .find(|l| !l.trim().is_empty())
                            .and_then(clean_message);
                    }
                    message_text.clear();
                }
                if suites
                    .last()
                    .is_some_and(|(_, opened_at)| *opened_at == depth)
                {
                    suites.pop();
                }
                if let Some((_, opened_at)) = &open
                    && *opened_at == depth
                    && let Some((case, _)) = open.take()
                {
                    summary.add(&case);
                    on_case(case);
                }
            }
            Event::Eof => {
                if depth > 0 {
                    return Err(ReportError::Malformed {
                        file: file.to_owned(),
                        line,
                        column: 0,
                        what: format!("truncated: {depth} element(s) not closed"),
                    });
                }
                break;
            }
            // Text (failure messages, system-out), CDATA, comments, processing instructions and
            // references in text carry nothing countersign reads.
            _ => {}
        }
    }
    if !seen_root {
        return Err(ReportError::Invalid {
            file: file.to_owned(),
            field: "root element".to_owned(),
            what: "empty document".to_owned(),
        });
    }
    Ok(summary)
}

/// Adds `text` to a message being gathered, until it holds a whole non-blank line (or more
/// than a message's worth of characters): only that line is kept.
fn gather(message: &mut String, text: &str) {
    let done = |m: &str| {
        m.len() > MAX_MESSAGE_CHARS * 4
            || m.trim_start()
                .split_once('\n')
                .is_some_and(|(first, _)| !first.trim().is_empty())
    };
    if !done(message) {
        message.push_str(text);
    }
}

/// Records a child element's verdict; a failure outranks flakiness, which outranks a skip.
fn raise(open: &mut Option<(TestCase, usize)>, outcome: Outcome) {
    let rank = |o: Outcome| match o {
        Outcome::Passed => 0,
        Outcome::Skipped => 1,
        Outcome::Flaky => 2,
        Outcome::Failed | Outcome::Errored => 3,
    };
    if let Some((case, _)) = open
        && rank(outcome) > rank(case.outcome)
    {
        case.outcome = outcome;
    }
}

/// The id prefix of the failed test a suite-level `<error>` or `<failure>` becomes, followed
/// by the suite's name.
pub const SUITE_LEVEL_PREFIX: &str = "suite-level error: ";

/// One attribute of an element, unescaped.
fn attribute(
    file: &str,
    line: u64,
    element: &BytesStart<'_>,
    key: &[u8],
) -> Result<Option<String>, ReportError> {
    for attribute in element.attributes() {
        let attribute = attribute.map_err(|e| invalid(file, line, &e.to_string()))?;
        if attribute.key.local_name().as_ref() == key {
            return attribute
                .unescape_value()
                .map(|v| Some(v.into_owned()))
                .map_err(|e| invalid(file, line, &format!("attribute: {e}")));
        }
    }
    Ok(None)
}

fn test_case(file: &str, line: u64, element: &BytesStart<'_>) -> Result<TestCase, ReportError> {
    let mut name = None;
    let mut classname = None;
    let mut time = None;
    for attribute in element.attributes() {
        let attribute = attribute.map_err(|e| invalid(file, line, &e.to_string()))?;
        let value = || {
            attribute
                .unescape_value()
                .map(|v| v.into_owned())
                .map_err(|e| invalid(file, line, &format!("testcase attribute: {e}")))
        };
        match attribute.key.local_name().as_ref() {
            b"name" => name = Some(value()?),
            b"classname" => classname = Some(value()?),
            // Old Surefire versions format times with a locale thousands separator.
            b"time" => time = value()?.replace(',', "").parse::<f64>().ok(),
            _ => {}
        }
    }
    let name = name.ok_or_else(|| invalid(file, line, "<testcase> without a name attribute"))?;
    let id = match classname {
        Some(class) if !class.is_empty() && class != name => format!("{class}::{name}"),
        _ => name,
    };
    Ok(TestCase {
        id,
        outcome: Outcome::Passed,
        time,
        message: None,
    })
}

fn invalid(file: &str, line: u64, what: &str) -> ReportError {
    ReportError::Invalid {
        file: file.to_owned(),
        field: format!("line {line}"),
        what: what.to_owned(),
    }
}

fn xml_error<R: BufRead>(
    file: &str,
    xml: &Reader<Bounded<R>>,
    error: &quick_xml::Error,
) -> ReportError {
    let line = xml.get_ref().line();
    if xml.get_ref().over_limit() || error.to_string().contains(OVER_LIMIT) {
        return ReportError::ItemTooLarge {
            file: file.to_owned(),
            line,
            limit: MAX_ITEM_BYTES,
        };
    }
    if let quick_xml::Error::Io(io) = error {
        return ReportError::Io {
            file: file.to_owned(),
            source: std::io::Error::new(io.kind(), io.to_string()),
        };
    }
    ReportError::Malformed {
        file: file.to_owned(),
        line,
        column: 0,
        what: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(xml: &str) -> String {
        match parse("t.xml", xml.as_bytes()) {
            Ok(report) => {
                let mut out = format!("{:?}\n", report.summary);
                for case in report.cases {
                    out.push_str(&format!("{:?} {}", case.outcome, case.id));
                    if let Some(message) = case.message {
                        out.push_str(&format!(" ({message:?})"));
                    }
                    out.push('\n');
                }
                out
            }
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn outcomes_and_ids() {
        insta::assert_snapshot!(check(r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="s" tests="5">
    <testcase classname="a.B" name="passes" time="0.5"/>
    <testcase classname="a.B" name="fails" time="1,000.25"><failure message="x">trace &amp; more</failure></testcase>
    <testcase classname="" name="errs"><error/></testcase>
    <testcase classname="same" name="same"><skipped/></testcase>
    <testcase name="flaky"><flakyFailure/><system-out>hi</system-out></testcase>
    <testcase classname="c" name="rerun"><failure/><rerunFailure/></testcase>
  </testsuite>
</testsuites>"#), @r#"
        JunitSummary { tests: 6, passed: 1, failed: 2, errored: 1, skipped: 1, flaky: 1, time: 1000.75 }
        Passed a.B::passes
        Failed a.B::fails ("x")
        Errored errs
        Skipped same
        Flaky flaky
        Failed c::rerun
        "#);
    }

    #[test]
    fn a_suite_level_error_or_failure_is_a_failed_test() {
        insta::assert_snapshot!(check(r#"<testsuites>
  <testsuite name="collect" tests="0" errors="1"><error message="ImportError"/></testsuite>
  <testsuite name="setup"><failure>boom</failure><testcase name="ok"/></testsuite>
  <testsuite name="quiet"><properties/><testcase name="skip"><skipped/></testcase></testsuite>
</testsuites>"#), @r#"
        JunitSummary { tests: 4, passed: 1, failed: 1, errored: 1, skipped: 1, flaky: 0, time: 0.0 }
        Errored suite-level error: collect ("ImportError")
        Failed suite-level error: setup ("boom")
        Passed ok
        Skipped skip
        "#);
    }

    #[test]
    fn failure_messages_come_from_the_attribute_or_the_first_line_of_text() {
        let long = "y".repeat(MAX_MESSAGE_CHARS + 10);
        let xml = format!(
            r#"<testsuite name="s">
  <testcase name="attr"><failure message="expected 1, got 2" type="Assert">long trace</failure></testcase>
  <testcase name="text"><failure>
      
      left &amp; right differ &#x41;
      at src/lib.rs:3
  </failure></testcase>
  <testcase name="cdata"><error><![CDATA[panicked at 'boom'
stack]]></error></testcase>
  <testcase name="escape"><failure message="red &#27;[31m done"/></testcase>
  <testcase name="long"><failure message="{long}"/></testcase>
  <testcase name="blank"><failure message="  "/></testcase>
  <testcase name="first-wins"><failure message="one"/><error message="two"/></testcase>
  <testcase name="flaky-then-fail"><flakyFailure message="flaky"/><failure>real</failure></testcase>
</testsuite>"#
        );
        let report = parse("t.xml", xml.as_bytes()).unwrap();
        let messages: Vec<(&str, Option<&str>)> = report
            .cases
            .iter()
            .map(|c| (c.id.as_str(), c.message.as_deref()))
            .collect();
        assert_eq!(messages[0], ("attr", Some("expected 1, got 2")));
        assert_eq!(messages[1], ("text", Some("left & right differ A")));
        assert_eq!(messages[2], ("cdata", Some("panicked at 'boom'")));
        // A terminal escape sequence in a test's output cannot reach a reader's terminal.
        assert_eq!(messages[3], ("escape", Some("red \u{FFFD}[31m done")));
        let cut = messages[4].1.unwrap();
        assert_eq!(cut.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(messages[5], ("blank", None));
        assert_eq!(messages[6], ("first-wins", Some("one")));
        // A flaky retry's message is not the failure's: only failures and errors speak.
        assert_eq!(messages[7], ("flaky-then-fail", Some("real")));
    }

    #[test]
    fn refusals() {
        let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<testsuites><testcase name="&lol2;"/></testsuites>"#;
        insta::assert_snapshot!(check(laughs), @"error: t.xml:2: XML with entity expansion is refused (DOCTYPE declaration)");
        insta::assert_snapshot!(check("<html/>"), @"error: t.xml: root element: expected <testsuites> or <testsuite>, found <html>");
        insta::assert_snapshot!(check(""), @"error: t.xml: root element: empty document");
        insta::assert_snapshot!(check("<testsuite><testcase/></testsuite>"), @"error: t.xml: line 1: <testcase> without a name attribute");
        insta::assert_snapshot!(check("<testsuite><testcase name='a'></testsuite>"), @"error: t.xml:1: ill-formed document: expected `</testcase>`, but `</testsuite>` was found");
        insta::assert_snapshot!(check("<testsuite><testcase name='&bogus;'/></testsuite>"), @"error: t.xml: line 1: testcase attribute: at 1..6: unrecognized entity `bogus`");
    }

    #[test]
    fn doctype_is_reported_where_it_opens_and_utf16_is_named() {
        let long = "<?xml version='1.0'?>\n<!DOCTYPE t [\n<!ENTITY a 'a'>\n<!ENTITY b 'b'>\n]>\n<testsuite/>";
        insta::assert_snapshot!(check(long), @"error: t.xml:2: XML with entity expansion is refused (DOCTYPE declaration)");
        let utf16: Vec<u8> = "\u{feff}<testsuite/>"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let err = parse("t.xml", &utf16[..]).unwrap_err().to_string();
        insta::assert_snapshot!(err, @"t.xml: encoding: the report is UTF-16; countersign reads UTF-8 reports (convert it, e.g. `iconv -f UTF-16 -t UTF-8`)");
        let no_bom: Vec<u8> = "<testsuite/>"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        assert!(
            parse("t.xml", &no_bom[..])
                .unwrap_err()
                .to_string()
                .contains("UTF-16")
        );
    }

    #[test]
    fn item_over_the_limit_is_refused() {
        let mut xml = String::from("<testsuite><testcase name='a'><system-out>");
        xml.push_str(&"x".repeat(MAX_ITEM_BYTES + 10));
        xml.push_str("</system-out></testcase></testsuite>");
        let err = parse("big.xml", xml.as_bytes()).unwrap_err();
        assert!(matches!(err, ReportError::ItemTooLarge { .. }), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let xml = format!("<testsuites>{}", "<a>".repeat(100));
        let err = parse("deep.xml", xml.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("nested deeper"), "{err}");
    }
}
