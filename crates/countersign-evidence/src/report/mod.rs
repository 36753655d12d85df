//! Reading the reports runners produce: JUnit XML, SARIF 2.1.0 and VEX (OpenVEX, CycloneDX).
//!
//! Every reader streams from an `impl BufRead` with memory bounded by the largest single item
//! (an XML event, a SARIF result, a VEX document is small by nature), never by the size of the
//! report. The caller opens the file; the file name only labels errors.
//!
//! This module does not decide what a result means for a change (coverage, regressions and
//! reachability are computed from these values elsewhere).

pub mod junit;
pub mod sarif;
pub mod vex;

use std::io::{self, BufRead, Read};

/// Why a report was refused. Each variant names the file and where in it.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Not well-formed (XML or JSON syntax, truncated input). `column` is 0 when unknown.
    #[error("{file}:{line}{}: {what}", column_suffix(*column))]
    Malformed {
        file: String,
        line: u64,
        column: u64,
        what: String,
    },
    /// Well-formed but not what the format requires.
    #[error("{file}: {field}: {what}")]
    Invalid {
        file: String,
        field: String,
        what: String,
    },
    /// A DOCTYPE (and with it any ENTITY declaration) is never processed: it is how billion
    /// laughs and external entity attacks get in, and no test tool writes one.
    #[error("{file}:{line}: XML with entity expansion is refused (DOCTYPE declaration)")]
    EntityExpansion { file: String, line: u64 },
    /// One item (an XML event, a SARIF result) is larger than the reader will hold.
    #[error("{file}:{line}: a single item is larger than {limit} bytes")]
    ItemTooLarge {
        file: String,
        line: u64,
        limit: usize,
    },
    /// A VEX statement about a product the system graph does not know.
    #[error("{file}: {field}: VEX statement for {vulnerability} names unknown product {product}")]
    UnknownProduct {
        file: String,
        field: String,
        vulnerability: String,
        product: String,
    },
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: io::Error,
    },
}

fn column_suffix(column: u64) -> String {
    if column == 0 {
        String::new()
    } else {
        format!(":{column}")
    }
}

/// Refuses a UTF-16 report by name (a byte order mark, or `<` as a UTF-16 code unit),
/// before a parser reports it as mere garbage. Peeks; consumes nothing.
pub(crate) fn refuse_utf16(file: &str, reader: &mut impl BufRead) -> Result<(), ReportError> {
    let head = reader.fill_buf().map_err(|source| ReportError::Io {
        file: file.to_owned(),
        source,
    })?;
    let utf16 = matches!(
        head,
        [0xFF, 0xFE, ..] | [0xFE, 0xFF, ..] | [b'<', 0, ..] | [0, b'<', ..]
    );
    if utf16 {
        return Err(ReportError::Invalid {
            file: file.to_owned(),
            field: "encoding".to_owned(),
            what: "the report is UTF-16; countersign reads UTF-8 reports (convert it, e.g. \
                   `iconv -f UTF-16 -t UTF-8`)"
                .to_owned(),
        });
    }
    Ok(())
}

/// serde_json appends " at line L column C" to its messages; `ReportError::Malformed`
/// carries both as fields already.
pub(crate) fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Largest single XML event or JSON item a reader holds. Failure messages with long stack
/// traces fit comfortably; a report that is one 2 GiB text node does not.
pub const MAX_ITEM_BYTES: usize = 16 * 1024 * 1024;

/// A `BufRead` that counts lines and refuses to hand out more than `limit` bytes between two
/// calls to [`Bounded::reset`], so a parser that buffers one item at a time stays bounded.
pub(crate) struct Bounded<R> {
    inner: R,
    since_reset: usize,
    limit: usize,
    line: u64,
}

impl<R: BufRead> Bounded<R> {
    pub(crate) fn new(inner: R, limit: usize) -> Self {
        Self {
            inner,
            since_reset: 0,
            limit,
            line: 1,
        }
    }

    pub(crate) fn reset(&mut self) {
        self.since_reset = 0;
    }

    /// 1-based line of the next unread byte.
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    pub(crate) fn over_limit(&self) -> bool {
        self.since_reset >= self.limit
    }
}

/// The error kind `Bounded` uses to say the limit was hit, recognisable after a parser wrapped it.
pub(crate) const OVER_LIMIT: &str = "countersign: item over the size limit";

impl<R: BufRead> Read for Bounded<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Bounded<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        // Handing out at most the remaining budget makes the parser come back for more, so
        // an item over the limit is caught even when the inner buffer holds it whole.
        let budget = self.limit.saturating_sub(self.since_reset);
        if budget == 0 {
            return Err(io::Error::other(OVER_LIMIT));
        }
        let available = self.inner.fill_buf()?;
        Ok(&available[..available.len().min(budget)])
    }

    fn consume(&mut self, amt: usize) {
        if let Ok(buf) = self.inner.fill_buf() {
            let taken = &buf[..amt.min(buf.len())];
            self.line += taken.iter().filter(|&&b| b == b'\n').count() as u64;
        }
        self.since_reset = self.since_reset.saturating_add(amt);
        self.inner.consume(amt);
    }
}
