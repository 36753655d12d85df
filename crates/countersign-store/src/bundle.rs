//! Assembling a proposal's audit bundle from storage: the one implementation behind
//! `countersign bundle export` and the server's `GET /v1/proposals/{id}/bundle`.
//!
//! The format and its offline verification are countersign-audit's ([`Bundle`],
//! [`countersign_audit::verify_bundle`]); which event fields name blobs is
//! [`referenced_blobs`]. This module only reads the entries, proofs, checkpoint and blobs.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry as Slot;

use countersign_audit::bundle::referenced_blobs;
use countersign_audit::{Bundle, Signer};

use crate::error::Error;
use crate::store::Store;

impl Store {
    /// The bundle of proposal `subject`: its entries in log order, each with an inclusion
    /// proof under the latest stored checkpoint if that covers them all, else under a new one
    /// signed with `signer` (and stored); and every blob the entries refer to.
    ///
    /// [`Error::NoEntries`] when nothing is about `subject`, [`Error::NoCheckpoint`] when no
    /// checkpoint covers the entries and there is no `signer`, [`Error::MissingBlob`] when
    /// an event names a blob the store lacks.
    pub async fn export_bundle(
        &self,
        subject: &str,
        signer: Option<&Signer>,
    ) -> Result<Bundle, Error> {
        let entries = self.entries_about(subject).await?;
        let Some(last) = entries.last() else {
            return Err(Error::NoEntries {
                subject: subject.to_owned(),
            });
        };
        let checkpoint = match (self.latest_checkpoint().await?, signer) {
            (Some(latest), _) if latest.size > last.index => latest,
            (_, Some(signer)) => self.sign_checkpoint(signer).await?,
            (_, None) => return Err(Error::NoCheckpoint { index: last.index }),
        };
        let mut parts = Vec::with_capacity(entries.len());
        let mut blobs = BTreeMap::new();
        for entry in &entries {
            for digest in referenced_blobs(&entry.event()?) {
                if let Slot::Vacant(slot) = blobs.entry(digest) {
                    let content =
                        self.blob(slot.key())
                            .await?
                            .ok_or_else(|| Error::MissingBlob {
                                digest: slot.key().clone(),
                                index: entry.index,
                            })?;
                    slot.insert(content);
                }
            }
            let proof = self.inclusion_proof(entry.index, checkpoint.size).await?;
            parts.push((entry.index, entry.leaf.clone(), proof.path));
        }
        Ok(Bundle::new(
            subject.to_owned(),
            checkpoint.signed_note,
            parts,
            blobs.into_values(),
        )?)
    }
}
