//! Tamper-evident audit log core: every store has its own append-only hash chain (chain id =
//! store id) and the platform has one (chain id = `Uuid::nil()`). Each entry's hash covers the
//! previous hash and an app-defined canonical encoding of the entry, so editing, deleting,
//! reordering or inserting rows breaks the chain. A DB-level attacker could still recompute every
//! hash, so the head is periodically signed with an Ed25519 key kept outside the database
//! (checkpoints); a rewritten chain no longer matches those signatures. Pure logic, no IO.

use std::collections::BTreeMap;
use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

/// A SHA-256 chain hash.
pub type Hash = [u8; 32];

/// The `prev_hash` of the first entry (seq 1) of every chain.
pub const GENESIS: Hash = [0; 32];

/// Bumped whenever the record encoding changes, so old and new hashes can never be confused.
const RECORD_TAG: &[u8] = b"stormcom.audit.record.v1";
/// Domain separation: a checkpoint signature can never be replayed as some other signed message.
const CHECKPOINT_TAG: &[u8] = b"stormcom.audit.checkpoint.v1";

/// One audit entry as the app sees it. `seq` starts at 1 in each chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    pub chain: Uuid,
    pub seq: i64,
    /// Build with [`truncate_time`] so the stored value equals the hashed one.
    pub at: OffsetDateTime,
    pub actor: String,
    pub actor_ip: Option<String>,
    pub action: String,
    pub target: String,
    pub summary: BTreeMap<String, String>,
}

/// UTC with microsecond precision: PostgreSQL keeps only microseconds, so a time with
/// nanoseconds would read back different from what was hashed.
#[must_use]
pub fn truncate_time(at: OffsetDateTime) -> OffsetDateTime {
    // Out of range only at the very edge of year ±9999; the instant is the same either way.
    let utc = at.checked_to_offset(UtcOffset::UTC).unwrap_or(at);
    let micros_only = utc.nanosecond() / 1_000 * 1_000;
    utc.replace_nanosecond(micros_only).unwrap_or(utc)
}

/// Unix nanoseconds of the truncated instant (independent of the offset).
fn canonical_nanos(at: OffsetDateTime) -> i128 {
    truncate_time(at).unix_timestamp_nanos()
}

fn put_field(out: &mut Vec<u8>, bytes: &[u8]) {
    // PostgreSQL text/bytea values are at most 1 GB, so every storable field fits a u32.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// The bytes that get hashed: a version tag, then every field length-prefixed (u32 BE) in a fixed
/// order, so no two records share an encoding (moving a character between adjacent fields
/// changes the lengths). Built by the app, never by the database, so it cannot drift with JSON
/// or column formatting. `at` is taken as a UTC instant at microsecond precision.
#[must_use]
pub fn canonical_bytes(record: &AuditRecord) -> Vec<u8> {
    let summary_len: usize = record.summary.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(
        128 + record.actor.len()
            + record.actor_ip.as_ref().map_or(0, String::len)
            + record.action.len()
            + record.target.len()
            + summary_len,
    );
    put_field(&mut out, RECORD_TAG);
    put_field(&mut out, record.chain.as_bytes());
    put_field(&mut out, &record.seq.to_be_bytes());
    put_field(&mut out, &canonical_nanos(record.at).to_be_bytes());
    put_field(&mut out, record.actor.as_bytes());
    // The presence byte keeps `None` and `Some("")` apart.
    let mut ip = Vec::new();
    match &record.actor_ip {
        None => ip.push(0),
        Some(value) => {
            ip.push(1);
            ip.extend_from_slice(value.as_bytes());
        }
    }
    put_field(&mut out, &ip);
    put_field(&mut out, record.action.as_bytes());
    put_field(&mut out, record.target.as_bytes());
    let count = u32::try_from(record.summary.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    for (key, value) in &record.summary {
        put_field(&mut out, key.as_bytes());
        put_field(&mut out, value.as_bytes());
    }
    out
}

/// SHA-256(prev ‖ canonical_bytes(record)): the hash stored with the entry and used as the next
/// entry's `prev_hash`.
#[must_use]
pub fn chain_hash(prev: &Hash, record: &AuditRecord) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(canonical_bytes(record));
    hasher.finalize().into()
}

/// An entry as read back from the database (hashes as raw bytes, not yet trusted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntry {
    pub record: AuditRecord,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

/// Why verification stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BreakReason {
    /// The entry belongs to another chain.
    WrongChain,
    /// The seq jumped past `expected`.
    Gap { expected: i64 },
    /// The seq did not increase (duplicate or reordered entries).
    OutOfOrder,
    /// `prev_hash` is not the previous entry's hash.
    PrevHashMismatch,
    /// The stored hash does not match the entry's content.
    HashMismatch,
    /// The chain ends before `head_seq`, which the head row or a checkpoint says exists.
    Truncated { head_seq: i64 },
    /// The head row's hash differs from the last entry's hash.
    HeadMismatch,
    /// Entries exist past the head row's `head_seq`.
    BeyondHead { head_seq: i64 },
    /// The entry's hash differs from the one signed in the checkpoint at `checkpoint_seq`.
    CheckpointMismatch { checkpoint_seq: i64 },
}

impl fmt::Display for BreakReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongChain => f.write_str("entry belongs to a different chain"),
            Self::Gap { expected } => write!(
                f,
                "seq {expected} is missing (an entry was deleted, or a forged one inserted with a new seq)"
            ),
            Self::OutOfOrder => f.write_str("seq does not follow the previous entry (duplicated or reordered entries)"),
            Self::PrevHashMismatch => {
                f.write_str("link to the previous entry is broken (entries deleted, swapped or inserted)")
            }
            Self::HashMismatch => f.write_str("stored hash does not match the entry's content (entry edited)"),
            Self::Truncated { head_seq } => {
                write!(
                    f,
                    "chain ends before seq {head_seq}, which is known to exist (tail deleted)"
                )
            }
            Self::HeadMismatch => f.write_str("head row hash differs from the last entry's hash"),
            Self::BeyondHead { head_seq } => write!(f, "entries exist past the head row's seq {head_seq}"),
            Self::CheckpointMismatch { checkpoint_seq } => write!(
                f,
                "hash differs from the signed checkpoint at seq {checkpoint_seq} (chain rewritten)"
            ),
        }
    }
}

/// The first point where a chain fails verification.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at seq {seq}: {reason}")]
pub struct ChainBreak {
    pub seq: i64,
    pub reason: BreakReason,
}

/// Streams a chain's entries (ascending seq, as read from the database) and stops at the first
/// break; after a break every call returns that same first break.
#[derive(Clone, Debug)]
pub struct ChainVerifier {
    chain: Uuid,
    last_seq: i64,
    last_hash: Hash,
    verified: u64,
    /// Sorted by seq; `next_checkpoint` indexes the first one not yet reached.
    checkpoints: Vec<Checkpoint>,
    next_checkpoint: usize,
    broken: Option<ChainBreak>,
}

impl ChainVerifier {
    #[must_use]
    pub const fn new(chain: Uuid) -> Self {
        Self {
            chain,
            last_seq: 0,
            last_hash: GENESIS,
            verified: 0,
            checkpoints: Vec::new(),
            next_checkpoint: 0,
            broken: None,
        }
    }

    /// Also compare against checkpoints. Their signatures must already have been checked with
    /// [`CheckpointVerifier::verify`]; checkpoints of other chains (or seq < 1) are ignored.
    #[must_use]
    pub fn with_checkpoints(mut self, mut checkpoints: Vec<Checkpoint>) -> Self {
        checkpoints.retain(|cp| cp.chain == self.chain && cp.seq >= 1);
        checkpoints.sort_by_key(|cp| cp.seq);
        self.checkpoints = checkpoints;
        self.next_checkpoint = 0;
        self
    }

    #[must_use]
    pub const fn chain(&self) -> Uuid {
        self.chain
    }

    /// Number of entries verified so far.
    #[must_use]
    pub const fn verified(&self) -> u64 {
        self.verified
    }

    /// Last verified seq and hash; `(0, GENESIS)` before any entry.
    #[must_use]
    pub const fn head(&self) -> (i64, Hash) {
        (self.last_seq, self.last_hash)
    }

    /// Checks the next entry.
    ///
    /// # Errors
    /// The first [`ChainBreak`] of the chain (also returned for every later call).
    pub fn push(&mut self, entry: &StoredEntry) -> Result<(), ChainBreak> {
        if let Some(first) = &self.broken {
            return Err(first.clone());
        }
        self.check(entry).map_err(|reason| {
            let found = ChainBreak {
                seq: entry.record.seq,
                reason,
            };
            self.broken = Some(found.clone());
            found
        })
    }

    fn check(&mut self, entry: &StoredEntry) -> Result<(), BreakReason> {
        let record = &entry.record;
        if record.chain != self.chain {
            return Err(BreakReason::WrongChain);
        }
        let Some(expected) = self.last_seq.checked_add(1) else {
            return Err(BreakReason::OutOfOrder);
        };
        if record.seq < expected {
            return Err(BreakReason::OutOfOrder);
        }
        if record.seq > expected {
            return Err(BreakReason::Gap { expected });
        }
        // The link first: a swapped or inserted entry is usually internally consistent, and
        // saying so points at the right cause.
        if entry.prev_hash.as_slice() != self.last_hash.as_slice() {
            return Err(BreakReason::PrevHashMismatch);
        }
        let hash = chain_hash(&self.last_hash, record);
        if entry.hash.as_slice() != hash.as_slice() {
            return Err(BreakReason::HashMismatch);
        }
        while let Some(cp) = self.checkpoints.get(self.next_checkpoint) {
            if cp.seq > record.seq {
                break;
            }
            // seq rises by exactly one from 1, so every kept checkpoint is met at its own seq.
            if cp.head_hash != hash {
                return Err(BreakReason::CheckpointMismatch { checkpoint_seq: cp.seq });
            }
            self.next_checkpoint += 1;
        }
        self.last_seq = record.seq;
        self.last_hash = hash;
        self.verified += 1;
        Ok(())
    }

    /// Call after the last entry: a checkpoint past the end means the tail was deleted (the
    /// chain alone cannot show that).
    ///
    /// # Errors
    /// The earlier break, or [`BreakReason::Truncated`] at the seq after the last entry read.
    pub fn finish(&self) -> Result<(), ChainBreak> {
        if let Some(first) = &self.broken {
            return Err(first.clone());
        }
        match self.checkpoints.last() {
            Some(cp) if cp.seq > self.last_seq => Err(ChainBreak {
                seq: self.last_seq.saturating_add(1),
                reason: BreakReason::Truncated { head_seq: cp.seq },
            }),
            _ => Ok(()),
        }
    }
}

/// Compares the verified chain with the chain's head row (last seq and hash, updated in the same
/// transaction as each append). Read the head and the entries in one snapshot, otherwise a
/// concurrent append shows up as a false break.
///
/// # Errors
/// The verifier's earlier break; [`BreakReason::Truncated`] at the seq after the last entry read
/// if the head is further; [`BreakReason::BeyondHead`] at `head_seq + 1` if entries go past the
/// head; [`BreakReason::HeadMismatch`] at `head_seq` if the hashes differ.
pub fn check_head(verifier: &ChainVerifier, head_seq: i64, head_hash: &[u8]) -> Result<(), ChainBreak> {
    if let Some(first) = &verifier.broken {
        return Err(first.clone());
    }
    let (last_seq, last_hash) = verifier.head();
    if head_seq > last_seq {
        return Err(ChainBreak {
            seq: last_seq.saturating_add(1),
            reason: BreakReason::Truncated { head_seq },
        });
    }
    if head_seq < last_seq {
        return Err(ChainBreak {
            seq: head_seq.saturating_add(1),
            reason: BreakReason::BeyondHead { head_seq },
        });
    }
    if head_hash != last_hash.as_slice() {
        return Err(ChainBreak {
            seq: head_seq,
            reason: BreakReason::HeadMismatch,
        });
    }
    Ok(())
}

/// Key and signature problems of checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("could not read OS randomness: {0}")]
    Random(getrandom::Error),
    #[error("key must be {expected} bytes, got {found}")]
    KeyLength { expected: usize, found: usize },
    #[error("not a valid Ed25519 public key")]
    InvalidPublicKey,
    #[error("checkpoint was signed by key {found}, expected key {expected}")]
    WrongKey { expected: String, found: String },
    #[error("checkpoint signature is malformed")]
    MalformedSignature,
    #[error("checkpoint signature does not verify")]
    BadSignature,
}

fn key_id_of(public: &VerifyingKey) -> String {
    let digest: Hash = Sha256::digest(public.as_bytes()).into();
    hex::encode(&digest[..8])
}

fn checkpoint_payload(chain: Uuid, seq: i64, head_hash: &Hash, at: OffsetDateTime) -> Vec<u8> {
    // Every field after the tag has a fixed width, so plain concatenation is unambiguous.
    let mut out = Vec::with_capacity(CHECKPOINT_TAG.len() + 16 + 8 + 32 + 16);
    out.extend_from_slice(CHECKPOINT_TAG);
    out.extend_from_slice(chain.as_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(head_hash);
    out.extend_from_slice(&canonical_nanos(at).to_be_bytes());
    out
}

/// The checkpoint signing key. It must live outside the database (config/secret store), or a
/// DB-level attacker could re-sign a rewritten chain. `Debug` never shows the secret.
#[derive(Clone)]
pub struct CheckpointKey(SigningKey);

impl CheckpointKey {
    /// A fresh key from OS randomness.
    ///
    /// # Errors
    /// [`AuditError::Random`] if the OS cannot provide randomness.
    pub fn generate() -> Result<Self, AuditError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(AuditError::Random)?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// From the 32-byte seed produced by [`Self::to_bytes`].
    ///
    /// # Errors
    /// [`AuditError::KeyLength`] unless exactly 32 bytes.
    pub fn from_bytes(seed: &[u8]) -> Result<Self, AuditError> {
        let seed: &[u8; 32] = seed.try_into().map_err(|_| AuditError::KeyLength {
            expected: 32,
            found: seed.len(),
        })?;
        Ok(Self(SigningKey::from_bytes(seed)))
    }

    /// The 32-byte secret seed, for storing in a secret store.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// First 16 hex digits of SHA-256 of the public key.
    #[must_use]
    pub fn key_id(&self) -> String {
        key_id_of(&self.0.verifying_key())
    }

    #[must_use]
    pub fn verifying_key(&self) -> CheckpointVerifier {
        CheckpointVerifier(self.0.verifying_key())
    }

    /// Signs "chain `chain` had hash `head_hash` at seq `seq`"; `at` is stored truncated to
    /// microseconds (UTC) so it survives the database and RFC 3339 export unchanged.
    #[must_use]
    pub fn sign(&self, chain: Uuid, seq: i64, head_hash: Hash, at: OffsetDateTime) -> Checkpoint {
        let at = truncate_time(at);
        let signature = self.0.sign(&checkpoint_payload(chain, seq, &head_hash, at));
        Checkpoint {
            chain,
            seq,
            head_hash,
            at,
            key_id: self.key_id(),
            signature: signature.to_bytes().to_vec(),
        }
    }
}

impl fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckpointKey")
            .field("key_id", &self.key_id())
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The public half, used to verify checkpoints (can be published).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointVerifier(VerifyingKey);

impl CheckpointVerifier {
    /// # Errors
    /// [`AuditError::KeyLength`] unless exactly 32 bytes, [`AuditError::InvalidPublicKey`] if
    /// they are not a curve point.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AuditError> {
        let bytes: &[u8; 32] = bytes.try_into().map_err(|_| AuditError::KeyLength {
            expected: 32,
            found: bytes.len(),
        })?;
        VerifyingKey::from_bytes(bytes)
            .map(Self)
            .map_err(|_| AuditError::InvalidPublicKey)
    }

    #[must_use]
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// First 16 hex digits of SHA-256 of the public key.
    #[must_use]
    pub fn key_id(&self) -> String {
        key_id_of(&self.0)
    }

    /// Checks the signature (strict Ed25519: no malleable signatures or weak keys).
    ///
    /// # Errors
    /// [`AuditError::WrongKey`], [`AuditError::MalformedSignature`] or [`AuditError::BadSignature`].
    pub fn verify(&self, cp: &Checkpoint) -> Result<(), AuditError> {
        let expected = self.key_id();
        if cp.key_id != expected {
            return Err(AuditError::WrongKey {
                expected,
                found: cp.key_id.clone(),
            });
        }
        let signature = Signature::from_slice(&cp.signature).map_err(|_| AuditError::MalformedSignature)?;
        let payload = checkpoint_payload(cp.chain, cp.seq, &cp.head_hash, cp.at);
        self.0
            .verify_strict(&payload, &signature)
            .map_err(|_| AuditError::BadSignature)
    }
}

/// A signed statement of a chain's head, exportable as JSON lines (hex bytes, RFC 3339 time)
/// so copies can be kept where the database cannot reach them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub chain: Uuid,
    pub seq: i64,
    #[serde(with = "hex_hash")]
    pub head_hash: Hash,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub key_id: String,
    #[serde(with = "hex_bytes")]
    pub signature: Vec<u8>,
}

/// Serde as a hex string, for [`Hash`].
mod hex_hash {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(value: &super::Hash, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<super::Hash, D::Error> {
        let text = String::deserialize(deserializer)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&text, &mut out).map_err(D::Error::custom)?;
        Ok(out)
    }
}

/// Serde as a hex string, for variable-length bytes.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(value: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        hex::decode(&text).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde::de::value::{Error as DeError, StrDeserializer};
    use time::macros::datetime;

    use super::*;

    const STORE: Uuid = Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0001);

    fn record(chain: Uuid, seq: i64) -> AuditRecord {
        let mut summary = BTreeMap::new();
        summary.insert("field".to_owned(), format!("value {seq}"));
        summary.insert("old".to_owned(), "x".to_owned());
        AuditRecord {
            chain,
            seq,
            at: truncate_time(datetime!(2025-03-01 12:00:00.123456789 UTC) + time::Duration::seconds(seq)),
            actor: format!("user:{seq}"),
            actor_ip: if seq % 2 == 0 {
                Some("203.0.113.7".to_owned())
            } else {
                None
            },
            action: "product.update".to_owned(),
            target: format!("product:{seq}"),
            summary,
        }
    }

    fn link(records: Vec<AuditRecord>) -> Vec<StoredEntry> {
        let mut prev = GENESIS;
        records
            .into_iter()
            .map(|record| {
                let hash = chain_hash(&prev, &record);
                let entry = StoredEntry {
                    record,
                    prev_hash: prev.to_vec(),
                    hash: hash.to_vec(),
                };
                prev = hash;
                entry
            })
            .collect()
    }

    fn build(n: i64) -> Vec<StoredEntry> {
        link((1..=n).map(|seq| record(STORE, seq)).collect())
    }

    fn verify(entries: &[StoredEntry], checkpoints: Vec<Checkpoint>) -> Result<ChainVerifier, ChainBreak> {
        let mut verifier = ChainVerifier::new(STORE).with_checkpoints(checkpoints);
        for entry in entries {
            verifier.push(entry)?;
        }
        verifier.finish()?;
        Ok(verifier)
    }

    fn fail(entries: &[StoredEntry], checkpoints: Vec<Checkpoint>) -> ChainBreak {
        verify(entries, checkpoints).err().unwrap()
    }

    fn hash_at(entries: &[StoredEntry], seq: i64) -> Hash {
        let entry = entries.iter().find(|e| e.record.seq == seq).unwrap();
        entry.hash.as_slice().try_into().unwrap()
    }

    fn key() -> CheckpointKey {
        CheckpointKey::from_bytes(&[7; 32]).unwrap()
    }

    fn checkpoint_at(entries: &[StoredEntry], seq: i64) -> Checkpoint {
        key().sign(STORE, seq, hash_at(entries, seq), datetime!(2025-03-02 00:00 UTC))
    }

    #[test]
    fn intact_chain_verifies() {
        let entries = build(10);
        let verifier = verify(&entries, vec![checkpoint_at(&entries, 4), checkpoint_at(&entries, 10)]).unwrap();
        assert_eq!(verifier.verified(), 10);
        assert_eq!(verifier.head(), (10, hash_at(&entries, 10)));
        check_head(&verifier, 10, &hash_at(&entries, 10)).unwrap();
    }

    #[test]
    fn empty_chain() {
        let verifier = verify(&[], vec![]).unwrap();
        assert_eq!(verifier.head(), (0, GENESIS));
        assert_eq!(verifier.verified(), 0);
        check_head(&verifier, 0, &GENESIS).unwrap();
        let err = check_head(&verifier, 3, &[1; 32]).unwrap_err();
        assert_eq!(
            err,
            ChainBreak {
                seq: 1,
                reason: BreakReason::Truncated { head_seq: 3 }
            }
        );
    }

    #[test]
    fn platform_chain_uses_nil_id() {
        let entries = link((1..=3).map(|seq| record(Uuid::nil(), seq)).collect());
        let mut verifier = ChainVerifier::new(Uuid::nil());
        for entry in &entries {
            verifier.push(entry).unwrap();
        }
        assert_eq!(verifier.chain(), Uuid::nil());
        // The same entries do not belong to a store chain.
        assert_eq!(
            fail(&entries, vec![]),
            ChainBreak {
                seq: 1,
                reason: BreakReason::WrongChain
            }
        );
    }

    #[test]
    fn edited_field_is_caught_at_that_entry() {
        let edits: Vec<fn(&mut AuditRecord)> = vec![
            |r| r.actor.push('!'),
            |r| r.actor_ip = Some("198.51.100.1".to_owned()),
            |r| r.action = "product.delete".to_owned(),
            |r| r.target.clear(),
            |r| r.at += time::Duration::microseconds(1),
            |r| {
                r.summary.insert("old".to_owned(), "y".to_owned());
            },
            |r| {
                r.summary.remove("field");
            },
        ];
        for edit in edits {
            let mut entries = build(10);
            edit(&mut entries[3].record);
            assert_eq!(
                fail(&entries, vec![]),
                ChainBreak {
                    seq: 4,
                    reason: BreakReason::HashMismatch
                }
            );
        }
    }

    #[test]
    fn deleted_entry_is_a_gap_at_the_next_seq() {
        let mut entries = build(10);
        entries.remove(3);
        assert_eq!(
            fail(&entries, vec![]),
            ChainBreak {
                seq: 5,
                reason: BreakReason::Gap { expected: 4 }
            }
        );
        // Deleting the first entry too.
        let mut entries = build(10);
        entries.remove(0);
        assert_eq!(
            fail(&entries, vec![]),
            ChainBreak {
                seq: 2,
                reason: BreakReason::Gap { expected: 1 }
            }
        );
    }

    #[test]
    fn swapped_entries_break_where_the_sequence_breaks() {
        // Rows' contents swapped, seq renumbered to keep the order: the link breaks at 4.
        let mut entries = build(10);
        entries.swap(3, 4);
        entries[3].record.seq = 4;
        entries[4].record.seq = 5;
        assert_eq!(
            fail(&entries, vec![]),
            ChainBreak {
                seq: 4,
                reason: BreakReason::PrevHashMismatch
            }
        );
        // Rows swapped with their seq: seq 5 turns up where 4 was due.
        let mut entries = build(10);
        entries.swap(3, 4);
        assert_eq!(
            fail(&entries, vec![]),
            ChainBreak {
                seq: 5,
                reason: BreakReason::Gap { expected: 4 }
            }
        );
    }

    #[test]
    fn duplicated_or_foreign_entries() {
        let mut entries = build(10);
        let copy = entries[2].clone();
        entries.insert(3, copy);
        assert_eq!(
            fail(&entries, vec![]),
            ChainBreak {
                seq: 3,
                reason: BreakReason::OutOfOrder
            }
        );

        let mut entries = build(10);
        entries[5].record.chain = Uuid::nil();
        assert_eq!(
            fail(&entries, vec![]),
            ChainBreak {
                seq: 6,
                reason: BreakReason::WrongChain
            }
        );
    }

    /// Inserts `forged` as seq 5 and renumbers the genuine entries after it.
    fn insert_after_4(mut entries: Vec<StoredEntry>, forged: StoredEntry) -> Vec<StoredEntry> {
        entries.insert(4, forged);
        for entry in &mut entries[5..] {
            entry.record.seq += 1;
        }
        entries
    }

    #[test]
    fn forged_insert_is_caught_at_the_forged_entry() {
        // Typical SQL-level forgery: copy the next row, change it, renumber.
        let entries = build(10);
        let mut forged = entries[4].clone();
        forged.record.action = "refund.approve".to_owned();
        let tampered = insert_after_4(entries, forged);
        assert_eq!(
            fail(&tampered, vec![]),
            ChainBreak {
                seq: 5,
                reason: BreakReason::HashMismatch
            }
        );
    }

    #[test]
    fn well_formed_forged_insert_needs_a_checkpoint_to_be_pinned() {
        // An attacker who recomputes the forged entry's hash makes it indistinguishable by the
        // chain alone; the first genuine entry after it breaks instead.
        let entries = build(10);
        let mut record = record(STORE, 5);
        record.action = "refund.approve".to_owned();
        let prev = hash_at(&entries, 4);
        let hash = chain_hash(&prev, &record);
        let forged = StoredEntry {
            record,
            prev_hash: prev.to_vec(),
            hash: hash.to_vec(),
        };
        let checkpoint = checkpoint_at(&entries, 5);
        let tampered = insert_after_4(entries, forged);
        assert_eq!(
            fail(&tampered, vec![]),
            ChainBreak {
                seq: 6,
                reason: BreakReason::PrevHashMismatch
            }
        );
        // A checkpoint over the original seq 5 pins the forgery itself.
        assert_eq!(
            fail(&tampered, vec![checkpoint]),
            ChainBreak {
                seq: 5,
                reason: BreakReason::CheckpointMismatch { checkpoint_seq: 5 }
            }
        );
    }

    #[test]
    fn rewritten_chain_passes_alone_but_not_against_a_checkpoint() {
        let original = build(10);
        let early = checkpoint_at(&original, 2);
        let late = checkpoint_at(&original, 5);
        let mut records: Vec<AuditRecord> = original.iter().map(|e| e.record.clone()).collect();
        records[2].actor = "someone-else".to_owned();
        let rewritten = link(records);

        let verifier = verify(&rewritten, vec![]).unwrap();
        check_head(&verifier, 10, &hash_at(&rewritten, 10)).unwrap();

        let key = key().verifying_key();
        key.verify(&early).unwrap();
        key.verify(&late).unwrap();
        assert_eq!(
            fail(&rewritten, vec![late, early]),
            ChainBreak {
                seq: 5,
                reason: BreakReason::CheckpointMismatch { checkpoint_seq: 5 }
            }
        );
    }

    #[test]
    fn truncated_tail_is_caught_by_head_row_and_checkpoint() {
        let original = build(10);
        let head_hash = hash_at(&original, 10);
        let checkpoint = checkpoint_at(&original, 9);
        let mut entries = original;
        entries.truncate(7);

        let verifier = verify(&entries, vec![]).unwrap();
        assert_eq!(
            check_head(&verifier, 10, &head_hash),
            Err(ChainBreak {
                seq: 8,
                reason: BreakReason::Truncated { head_seq: 10 }
            })
        );
        assert_eq!(
            fail(&entries, vec![checkpoint]),
            ChainBreak {
                seq: 8,
                reason: BreakReason::Truncated { head_seq: 9 }
            }
        );
    }

    #[test]
    fn head_row_disagreements() {
        let entries = build(10);
        let verifier = verify(&entries, vec![]).unwrap();
        assert_eq!(
            check_head(&verifier, 10, &[9; 32]),
            Err(ChainBreak {
                seq: 10,
                reason: BreakReason::HeadMismatch
            })
        );
        assert_eq!(
            check_head(&verifier, 8, &hash_at(&entries, 8)),
            Err(ChainBreak {
                seq: 9,
                reason: BreakReason::BeyondHead { head_seq: 8 }
            })
        );
    }

    #[test]
    fn first_break_sticks() {
        let mut entries = build(10);
        entries[2].record.actor.push('!');
        let mut verifier = ChainVerifier::new(STORE);
        verifier.push(&entries[0]).unwrap();
        verifier.push(&entries[1]).unwrap();
        let first = verifier.push(&entries[2]).unwrap_err();
        assert_eq!(
            first,
            ChainBreak {
                seq: 3,
                reason: BreakReason::HashMismatch
            }
        );
        assert_eq!(verifier.push(&entries[3]), Err(first.clone()));
        assert_eq!(verifier.finish(), Err(first.clone()));
        assert_eq!(check_head(&verifier, 2, &hash_at(&entries, 2)), Err(first));
        assert_eq!(verifier.head(), (2, hash_at(&entries, 2)));
        assert_eq!(verifier.verified(), 2);
    }

    #[test]
    fn break_messages_read_well() {
        let msg = ChainBreak {
            seq: 5,
            reason: BreakReason::Gap { expected: 4 },
        }
        .to_string();
        assert_eq!(
            msg,
            "audit chain broken at seq 5: seq 4 is missing (an entry was deleted, or a forged one inserted with a new seq)"
        );
    }

    #[test]
    fn truncate_time_is_utc_micros() {
        let at = truncate_time(datetime!(2024-01-02 03:04:05.123456789 +2));
        assert_eq!(at, datetime!(2024-01-02 01:04:05.123456 UTC));
        assert_eq!(at.offset(), UtcOffset::UTC);
        assert_eq!(truncate_time(at), at);
    }

    #[test]
    fn encoding_ignores_offset_and_sub_micros_only() {
        let a = record(STORE, 1);
        let mut b = a.clone();
        b.at = (a.at + time::Duration::nanoseconds(999)).to_offset(time::macros::offset!(-5));
        assert_eq!(canonical_bytes(&a), canonical_bytes(&b));
        b.at += time::Duration::nanoseconds(1);
        assert_ne!(canonical_bytes(&a), canonical_bytes(&b));
    }

    #[test]
    fn near_collisions_encode_differently() {
        let base = record(STORE, 1);
        let variants: Vec<fn(&mut AuditRecord)> = vec![
            |r| {
                r.action = "ab".to_owned();
                r.target = "c".to_owned();
            },
            |r| {
                r.action = "a".to_owned();
                r.target = "bc".to_owned();
            },
            |r| {
                r.actor = "ab".to_owned();
                r.actor_ip = None;
            },
            |r| {
                r.actor = "a".to_owned();
                r.actor_ip = Some("b".to_owned());
            },
            |r| r.actor_ip = Some(String::new()),
            |r| r.summary = BTreeMap::from([("ab".to_owned(), "c".to_owned())]),
            |r| r.summary = BTreeMap::from([("a".to_owned(), "bc".to_owned())]),
            |r| r.summary = BTreeMap::from([(String::new(), String::new())]),
            |r| r.summary = BTreeMap::new(),
            |r| {
                r.target = "x".to_owned();
                r.summary = BTreeMap::new();
            },
            |r| {
                r.target = String::new();
                r.summary = BTreeMap::from([("x".to_owned(), String::new())]);
            },
            |r| r.seq = 2,
            |r| r.chain = Uuid::nil(),
        ];
        let mut seen = vec![canonical_bytes(&base)];
        for variant in variants {
            let mut r = base.clone();
            variant(&mut r);
            let bytes = canonical_bytes(&r);
            assert!(!seen.contains(&bytes), "collision for {r:?}");
            seen.push(bytes);
        }
    }

    #[test]
    fn chain_hash_depends_on_prev() {
        let r = record(STORE, 1);
        assert_eq!(chain_hash(&GENESIS, &r), chain_hash(&GENESIS, &r));
        assert_ne!(chain_hash(&GENESIS, &r), chain_hash(&[1; 32], &r));
    }

    #[test]
    fn encoding_is_stable() {
        // Known answer: changing the encoding would orphan every stored chain.
        let r = AuditRecord {
            chain: Uuid::nil(),
            seq: 1,
            at: datetime!(2025-01-01 00:00 UTC),
            actor: "a".to_owned(),
            actor_ip: None,
            action: "b".to_owned(),
            target: "c".to_owned(),
            summary: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
        };
        let bytes = canonical_bytes(&r);
        assert!(bytes.starts_with(&[0, 0, 0, 24]));
        assert_eq!(
            hex::encode(chain_hash(&GENESIS, &r)),
            "639a7e44f1eb05523fd0e0512110c294e1a74f408ec15ec3e2faa11359ca1287"
        );
    }

    #[test]
    fn checkpoint_signature_checks() {
        let key = key();
        let verifier = key.verifying_key();
        let cp = key.sign(STORE, 7, [3; 32], datetime!(2025-03-02 10:00:00.123456789 UTC));
        assert_eq!(cp.at, datetime!(2025-03-02 10:00:00.123456 UTC));
        assert_eq!(cp.key_id, key.key_id());
        verifier.verify(&cp).unwrap();

        let other = CheckpointKey::generate().unwrap();
        assert!(matches!(
            other.verifying_key().verify(&cp),
            Err(AuditError::WrongKey { .. })
        ));
        // A forged key id does not help another key.
        let mut forged = other.sign(STORE, 7, [3; 32], cp.at);
        forged.key_id = key.key_id();
        assert!(matches!(verifier.verify(&forged), Err(AuditError::BadSignature)));

        let changes: Vec<fn(&mut Checkpoint)> = vec![
            |c| c.chain = Uuid::nil(),
            |c| c.seq += 1,
            |c| c.head_hash[0] ^= 1,
            |c| c.at += time::Duration::microseconds(1),
            |c| c.signature[10] ^= 1,
        ];
        for change in changes {
            let mut bad = cp.clone();
            change(&mut bad);
            assert!(matches!(verifier.verify(&bad), Err(AuditError::BadSignature)));
        }
        let mut short = cp;
        short.signature.pop();
        assert!(matches!(verifier.verify(&short), Err(AuditError::MalformedSignature)));
    }

    #[test]
    fn keys_round_trip_and_stay_secret() {
        let key = CheckpointKey::generate().unwrap();
        let again = CheckpointKey::from_bytes(&key.to_bytes()).unwrap();
        assert_eq!(again.key_id(), key.key_id());
        assert_eq!(key.key_id().len(), 16);
        let public = CheckpointVerifier::from_bytes(&key.verifying_key().to_bytes()).unwrap();
        assert_eq!(public, key.verifying_key());
        assert_eq!(public.key_id(), key.key_id());

        let debug = format!("{key:?}");
        assert!(debug.contains("redacted"));
        assert!(!debug.contains(&hex::encode(key.to_bytes())));
        assert!(!debug.contains(&format!("{:?}", key.to_bytes())));

        assert!(matches!(
            CheckpointKey::from_bytes(&[1; 31]),
            Err(AuditError::KeyLength {
                expected: 32,
                found: 31
            })
        ));
        assert!(matches!(
            CheckpointVerifier::from_bytes(&[1; 33]),
            Err(AuditError::KeyLength { .. })
        ));
    }

    #[test]
    fn export_fields_parse_back() {
        let cp = key().sign(STORE, 3, [0xab; 32], datetime!(2025-03-02 10:00:00.5 +1));
        let hash_hex = hex::encode(cp.head_hash);
        let sig_hex = hex::encode(&cp.signature);
        let at_text = cp.at.format(&time::format_description::well_known::Rfc3339).unwrap();
        assert_eq!(at_text, "2025-03-02T09:00:00.5Z");

        let hash = hex_hash::deserialize(StrDeserializer::<DeError>::new(&hash_hex)).unwrap();
        let sig = hex_bytes::deserialize(StrDeserializer::<DeError>::new(&sig_hex)).unwrap();
        let at = time::serde::rfc3339::deserialize(StrDeserializer::<DeError>::new(&at_text)).unwrap();
        let back = Checkpoint {
            head_hash: hash,
            signature: sig,
            at,
            ..cp.clone()
        };
        assert_eq!(back, cp);
        key().verifying_key().verify(&back).unwrap();

        assert!(hex_hash::deserialize(StrDeserializer::<DeError>::new("abcd")).is_err());
        assert!(hex_bytes::deserialize(StrDeserializer::<DeError>::new("zz")).is_err());
    }
}
