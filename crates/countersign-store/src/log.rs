//! The log's values as they cross the database boundary: an [`Entry`] read back, a [`Leaf`]
//! (an event encoded before a transaction begins), a [`NewEntry`] about to be written with
//! the stored hashes it completes, and a [`StoredCheckpoint`].
//!
//! The lowest layer of the crate with `error`: `backend` writes and reads these, `Tx` and
//! `Store` hand them to callers. It runs no SQL and does no Merkle math beyond hashing a leaf.

use std::borrow::Cow;

use countersign_audit::merkle::Hash;
use countersign_audit::{Event, EventError, leaf_bytes, leaf_hash};

use crate::error::Error;

/// One log entry: its index and its leaf bytes (the event's canonical JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub index: u64,
    pub leaf: Vec<u8>,
}

impl Entry {
    /// The event this entry records, refusing bytes that are not its canonical form.
    pub fn event(&self) -> Result<Event, EventError> {
        Event::from_leaf(&self.leaf)
    }
}

/// A signed checkpoint as stored: the note text is *not* verified here (see
/// [`countersign_audit::SignedCheckpoint::open`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub size: u64,
    /// The C2SP signed note, as published.
    pub signed_note: String,
    /// When it was stored, RFC 3339 UTC with milliseconds, from the database clock.
    pub created_at: String,
}

/// An event encoded as a log leaf: its canonical bytes, leaf hash and subject, and the event
/// itself, so the transaction that appends it can link it to the previous entry about its
/// subject ([`Leaf::chained`]).
#[derive(Debug, Clone)]
pub struct Leaf {
    bytes: Vec<u8>,
    pub(crate) hash: Hash,
    subject: String,
    event: Event,
}

impl Leaf {
    /// Encodes `event`, refusing one that could not be read back (invalid fields).
    pub fn new(event: &Event) -> Result<Leaf, Error> {
        event.validate()?;
        let bytes = leaf_bytes(event)?;
        Ok(Leaf {
            hash: leaf_hash(&bytes),
            bytes,
            subject: event.subject.clone(),
            event: event.clone(),
        })
    }

    /// This leaf linked to `prev`, the index of the previous entry about its subject (`None`:
    /// the first). Encoded again only when the link differs from the event's: the first
    /// entry of a subject, most of a new proposal's, keeps the bytes encoded before `begin`.
    pub(crate) fn chained(&self, prev: Option<u64>) -> Result<Cow<'_, Leaf>, Error> {
        if self.event.prev == Some(prev) {
            return Ok(Cow::Borrowed(self));
        }
        let mut event = self.event.clone();
        event.prev = Some(prev);
        Ok(Cow::Owned(Leaf::new(&event)?))
    }

    pub(crate) fn subject(&self) -> &str {
        &self.subject
    }
}

/// A leaf about to be written at `index`, with the stored hashes it completes (from
/// `first` on).
pub(crate) struct NewEntry<'a> {
    pub index: u64,
    /// The leaf as written: linked to the previous entry about its subject.
    pub leaf: Cow<'a, Leaf>,
    pub first: u64,
    pub hashes: Vec<Hash>,
}

impl NewEntry<'_> {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.leaf.bytes
    }

    pub(crate) fn leaf_hash(&self) -> &Hash {
        &self.leaf.hash
    }

    pub(crate) fn subject(&self) -> &str {
        &self.leaf.subject
    }
}
