//! An in-process copy of the log's stored hashes, for a long-lived process (the server) that
//! serves many proofs: with it, a proof or tree head is computed from memory instead of one
//! database round trip each.
//!
//! Why this is always correct: a stored hash never changes once committed, and the committed
//! ones always form a prefix `0..n` of the index space (appenders are serialized and each
//! writes the next contiguous run, see [`crate::Tx`]). So the mirror is a prefix of the
//! table: it is extended, never invalidated. It catches up with what other connections or
//! processes committed by reading only the rows past its end, and a committing [`crate::Tx`]
//! in this process hands over what it wrote.
//!
//! What it does not do: detect tampering. A row edited in the database after the mirror read
//! it is not seen here; `countersign log verify` ([`crate::verify()`]) reads storage itself,
//! and every proof served is checked by its reader against a signed checkpoint anyway.
//!
//! Cost: 32 bytes per stored hash, about two per leaf (64 MB at 1,000,000 entries).

use std::sync::RwLock;

use countersign_audit::merkle::Hash;

use crate::backend::{Conn, Hashes};
use crate::error::Error;

/// Rows read per query while catching up, so a first fill of a large log streams.
const FILL_BATCH: u64 = 65_536;

#[derive(Debug, Default)]
pub(crate) struct Mirror {
    /// `None` until [`crate::Store::mirror_stored_hashes`] turns the mirror on.
    hashes: RwLock<Option<Vec<Hash>>>,
    /// Held while catching up, so concurrent misses read the new rows once.
    fill: tokio::sync::Mutex<()>,
}

impl Mirror {
    pub(crate) fn enabled(&self) -> bool {
        self.hashes.read().is_ok_and(|h| h.is_some())
    }

    /// The hashes at `indexes` if every one is mirrored.
    pub(crate) fn get(&self, indexes: &[u64]) -> Option<Hashes> {
        let guard = self.hashes.read().ok()?;
        let hashes = guard.as_ref()?;
        let mut out = Hashes::default();
        for &index in indexes {
            let hash = hashes.get(usize::try_from(index).ok()?)?;
            out.0.insert(index, *hash);
        }
        Some(out)
    }

    fn len(&self) -> Option<u64> {
        let guard = self.hashes.read().ok()?;
        guard.as_ref().map(|h| h.len() as u64)
    }

    /// Turns the mirror on (empty) if it is off.
    pub(crate) fn enable(&self) {
        if let Ok(mut guard) = self.hashes.write()
            && guard.is_none()
        {
            *guard = Some(Vec::new());
        }
    }

    /// Appends `run`, the stored hashes from index `first` on, if they continue the mirror
    /// exactly; otherwise leaves it for [`Mirror::catch_up`]. Called only with committed
    /// hashes.
    pub(crate) fn extend(&self, first: u64, run: &[Hash]) {
        if let Ok(mut guard) = self.hashes.write()
            && let Some(hashes) = guard.as_mut()
            && hashes.len() as u64 == first
        {
            hashes.extend_from_slice(run);
        }
    }

    /// Reads the committed rows past the mirror's end until `until` (exclusive) is covered
    /// or the table ends. Returns the mirror's length after.
    pub(crate) async fn catch_up(&self, conn: &mut Conn<'_>, until: u64) -> Result<u64, Error> {
        let _filling = self.fill.lock().await;
        loop {
            let Some(len) = self.len() else { return Ok(0) };
            if len >= until {
                return Ok(len);
            }
            let run = conn.hashes_from(len, FILL_BATCH).await?;
            let read = run.len() as u64;
            self.extend(len, &run);
            if read < FILL_BATCH {
                return Ok(self.len().unwrap_or(0));
            }
        }
    }
}
