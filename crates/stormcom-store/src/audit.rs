//! Storage of the hash-chained audit log. Appends happen inside the caller's
//! transaction, so an entry exists exactly when the change it records does. The head row
//! of a chain is updated first, which serialises appends per chain (row lock on
//! PostgreSQL; the single write lock on SQLite) and leaves no gaps.

use std::collections::BTreeMap;

use sqlx::FromRow;
use stormcom_domain::audit::{self, AuditRecord, Checkpoint, StoredEntry};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Handle, Result, StoreError, StoreScope, Tx, dispatch, now};

/// The chain of platform-level actions (users, stores, superusers).
pub const PLATFORM_CHAIN: Uuid = Uuid::nil();

/// What happened, by whom; the chain, sequence number, time and hashes are added here.
#[derive(Debug, Clone, Default)]
pub struct NewEntry {
    pub actor: String,
    pub actor_ip: Option<String>,
    pub action: String,
    pub target: String,
    /// A change summary: ids and counts, never secrets or clear personal data.
    pub summary: BTreeMap<String, String>,
}

/// Appends to a store's chain.
pub async fn append(tx: &mut Tx, scope: &StoreScope, entry: NewEntry) -> Result<AuditRecord> {
    append_to(tx, scope.uuid(), entry).await
}

/// Appends to the platform chain.
pub async fn append_platform(tx: &mut Tx, entry: NewEntry) -> Result<AuditRecord> {
    append_to(tx, PLATFORM_CHAIN, entry).await
}

async fn append_to(tx: &mut Tx, chain: Uuid, entry: NewEntry) -> Result<AuditRecord> {
    let head: Option<(i64, Vec<u8>)> = dispatch!(tx, c => sqlx::query_as(
        "UPDATE audit_heads SET seq = seq + 1 WHERE chain_id = $1 RETURNING seq, hash",
    )
    .bind(chain)
    .fetch_optional(&mut *c)
    .await?);
    let (seq, prev) = head.ok_or_else(|| StoreError::Corrupt(format!("audit chain {chain} has no head")))?;
    let prev: audit::Hash = prev
        .try_into()
        .map_err(|_| StoreError::Corrupt("audit head hash is not 32 bytes".into()))?;
    let record = AuditRecord {
        chain,
        seq,
        at: audit::truncate_time(now()),
        actor: entry.actor,
        actor_ip: entry.actor_ip,
        action: entry.action,
        target: entry.target,
        summary: entry.summary,
    };
    let hash = audit::chain_hash(&prev, &record);
    let summary = serde_json::to_string(&record.summary).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    dispatch!(tx, c => {
        sqlx::query(
            "INSERT INTO audit_log (chain_id, seq, prev_hash, hash, at, actor, actor_ip, action, target, summary) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(chain)
        .bind(seq)
        .bind(&prev[..])
        .bind(&hash[..])
        .bind(record.at)
        .bind(&record.actor)
        .bind(record.actor_ip.as_deref())
        .bind(&record.action)
        .bind(&record.target)
        .bind(&summary)
        .execute(&mut *c)
        .await?;
        sqlx::query("UPDATE audit_heads SET hash = $2 WHERE chain_id = $1")
            .bind(chain)
            .bind(&hash[..])
            .execute(&mut *c)
            .await?
            .rows_affected()
    });
    Ok(record)
}

#[derive(FromRow)]
struct EntryRow {
    chain_id: Uuid,
    seq: i64,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
    at: OffsetDateTime,
    actor: String,
    actor_ip: Option<String>,
    action: String,
    target: String,
    summary: String,
}

impl TryFrom<EntryRow> for StoredEntry {
    type Error = StoreError;

    fn try_from(r: EntryRow) -> Result<Self> {
        // An unreadable summary is kept as a single field, so verification reports the
        // entry as tampered instead of failing to read it.
        let summary = serde_json::from_str(&r.summary)
            .unwrap_or_else(|_| BTreeMap::from([("unreadable".to_owned(), r.summary.clone())]));
        Ok(Self {
            record: AuditRecord {
                chain: r.chain_id,
                seq: r.seq,
                at: r.at,
                actor: r.actor,
                actor_ip: r.actor_ip,
                action: r.action,
                target: r.target,
                summary,
            },
            prev_hash: r.prev_hash,
            hash: r.hash,
        })
    }
}

/// Entries of a chain after `after_seq`, in order.
pub async fn entries(h: &mut impl Handle, chain: Uuid, after_seq: i64, limit: u32) -> Result<Vec<StoredEntry>> {
    let rows: Vec<EntryRow> = dispatch!(h, c => sqlx::query_as(
        "SELECT chain_id, seq, prev_hash, hash, at, actor, actor_ip, action, target, summary FROM audit_log \
         WHERE chain_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(chain)
    .bind(after_seq)
    .bind(i64::from(limit))
    .fetch_all(&mut *c)
    .await?);
    rows.into_iter().map(StoredEntry::try_from).collect()
}

/// The chain id of a store.
#[must_use]
pub fn chain_of(scope: &StoreScope) -> Uuid {
    scope.uuid()
}

/// The head row: (last seq, last hash).
pub async fn head(h: &mut impl Handle, chain: Uuid) -> Result<Option<(i64, Vec<u8>)>> {
    Ok(
        dispatch!(h, c => sqlx::query_as("SELECT seq, hash FROM audit_heads WHERE chain_id = $1")
        .bind(chain)
        .fetch_optional(&mut *c)
        .await?),
    )
}

/// Every chain, platform first.
pub async fn chains(h: &mut impl Handle) -> Result<Vec<Uuid>> {
    Ok(
        dispatch!(h, c => sqlx::query_scalar("SELECT chain_id FROM audit_heads ORDER BY chain_id")
        .fetch_all(&mut *c)
        .await?),
    )
}

pub async fn insert_checkpoint(tx: &mut Tx, checkpoint: &Checkpoint) -> Result<()> {
    dispatch!(tx, c => sqlx::query(
        "INSERT INTO audit_checkpoints (chain_id, seq, head_hash, at, key_id, signature) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(checkpoint.chain)
    .bind(checkpoint.seq)
    .bind(&checkpoint.head_hash[..])
    .bind(checkpoint.at)
    .bind(&checkpoint.key_id)
    .bind(&checkpoint.signature)
    .execute(&mut *c)
    .await?
    .rows_affected());
    Ok(())
}

#[derive(FromRow)]
struct CheckpointRow {
    chain_id: Uuid,
    seq: i64,
    head_hash: Vec<u8>,
    at: OffsetDateTime,
    key_id: String,
    signature: Vec<u8>,
}

pub async fn checkpoints(h: &mut impl Handle, chain: Uuid) -> Result<Vec<Checkpoint>> {
    let rows: Vec<CheckpointRow> = dispatch!(h, c => sqlx::query_as(
        "SELECT chain_id, seq, head_hash, at, key_id, signature FROM audit_checkpoints WHERE chain_id = $1 ORDER BY seq",
    )
    .bind(chain)
    .fetch_all(&mut *c)
    .await?);
    rows.into_iter()
        .map(|r| {
            Ok(Checkpoint {
                chain: r.chain_id,
                seq: r.seq,
                head_hash: r
                    .head_hash
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("checkpoint hash size".into()))?,
                at: r.at,
                key_id: r.key_id,
                signature: r.signature,
            })
        })
        .collect()
}
