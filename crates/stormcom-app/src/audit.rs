//! Reading, verifying and checkpointing the audit chains.

use stormcom_domain::Permission;
use stormcom_domain::audit::{ChainBreak, ChainVerifier, Checkpoint, StoredEntry, check_head};
use stormcom_store::audit::{self as store_audit, PLATFORM_CHAIN};
use stormcom_store::identity;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::access::entry;
use crate::auth::normalize_email;
use crate::catalog::{Page, into_page, page_size};
use crate::{App, AppError, Result, StoreContext};

/// Entries read per query while verifying.
const VERIFY_BATCH: u32 = 2_000;

/// The outcome of verifying one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub chain: Uuid,
    pub entries_verified: u64,
    pub checkpoints_checked: usize,
    /// The first problem found, if any.
    pub failure: Option<ChainBreak>,
}

impl App {
    /// One page of a store's audit log, oldest first.
    pub async fn audit_entries(
        &self,
        ctx: &StoreContext,
        after_seq: Option<i64>,
        limit: Option<u32>,
    ) -> Result<Page<StoredEntry, i64>> {
        ctx.require(Permission::AuditRead)?;
        let limit = page_size(limit)?;
        let mut reader = self.db().reader().await?;
        let chain = store_audit::chain_of(ctx.scope());
        let items = store_audit::entries(&mut reader, chain, after_seq.unwrap_or(0), limit + 1).await?;
        Ok(into_page(items, limit, |e| e.record.seq))
    }

    /// Verifies a store's chain against its head row and the checkpoints stored with it.
    pub async fn verify_store_audit(&self, ctx: &StoreContext) -> Result<Verification> {
        ctx.require(Permission::AuditRead)?;
        self.verify_chain(store_audit::chain_of(ctx.scope()), None, &|_, _| {})
            .await
    }

    /// Verifies one chain: every link and hash, then the head row, then checkpoints
    /// (from `external` when given, e.g. an exported file, else those in the database;
    /// either way each signature is checked against this server's checkpoint key).
    pub async fn verify_chain(
        &self,
        chain: Uuid,
        external: Option<Vec<Checkpoint>>,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<Verification> {
        let mut reader = self.db().reader().await?;
        let checkpoints = match external {
            Some(list) => list.into_iter().filter(|c| c.chain == chain).collect(),
            None => store_audit::checkpoints(&mut reader, chain).await?,
        };
        let key = self.keys.checkpoint.verifying_key();
        let mut report = Verification {
            chain,
            entries_verified: 0,
            checkpoints_checked: checkpoints.len(),
            failure: None,
        };
        for checkpoint in &checkpoints {
            if let Err(e) = key.verify(checkpoint) {
                report.failure = Some(ChainBreak {
                    seq: checkpoint.seq,
                    reason: stormcom_domain::audit::BreakReason::CheckpointMismatch {
                        checkpoint_seq: checkpoint.seq,
                    },
                });
                tracing::warn!(error = %e, seq = checkpoint.seq, "checkpoint signature invalid");
                return Ok(report);
            }
        }
        let (head_seq, head_hash) = store_audit::head(&mut reader, chain).await?.ok_or(AppError::NotFound)?;
        let total = u64::try_from(head_seq).unwrap_or(0);
        let mut verifier = ChainVerifier::new(chain).with_checkpoints(checkpoints);
        let mut after = 0;
        let result = loop {
            let batch = store_audit::entries(&mut reader, chain, after, VERIFY_BATCH).await?;
            let Some(last) = batch.last() else { break Ok(()) };
            after = last.record.seq;
            if let Err(e) = batch.iter().try_for_each(|entry| verifier.push(entry)) {
                break Err(e);
            }
            progress(verifier.verified(), total);
        };
        report.entries_verified = verifier.verified();
        report.failure = result
            .and_then(|()| check_head(&verifier, head_seq, &head_hash))
            .and_then(|()| verifier.finish())
            .err();
        Ok(report)
    }

    /// Every chain: the platform chain, then each store's.
    pub async fn audit_chains(&self) -> Result<Vec<Uuid>> {
        let mut reader = self.db().reader().await?;
        Ok(store_audit::chains(&mut reader).await?)
    }

    /// Signs the current head of every chain that moved since its last checkpoint.
    pub async fn checkpoint_all(&self) -> Result<Vec<Checkpoint>> {
        let mut signed = Vec::new();
        for chain in self.audit_chains().await? {
            let mut tx = self.db().begin().await?;
            let Some((seq, hash)) = store_audit::head(&mut tx, chain).await? else {
                continue;
            };
            let last = store_audit::checkpoints(&mut tx, chain)
                .await?
                .last()
                .map_or(0, |c| c.seq);
            if seq == 0 || seq == last {
                continue;
            }
            let hash = hash
                .try_into()
                .map_err(|_| AppError::Internal("audit head hash is not 32 bytes".into()))?;
            let checkpoint = self.keys.checkpoint.sign(chain, seq, hash, OffsetDateTime::now_utc());
            store_audit::insert_checkpoint(&mut tx, &checkpoint).await?;
            tx.commit().await?;
            signed.push(checkpoint);
        }
        Ok(signed)
    }

    /// All stored checkpoints, for export.
    pub async fn all_checkpoints(&self) -> Result<Vec<Checkpoint>> {
        let mut reader = self.db().reader().await?;
        let mut all = Vec::new();
        for chain in store_audit::chains(&mut reader).await? {
            all.extend(store_audit::checkpoints(&mut reader, chain).await?);
        }
        Ok(all)
    }

    /// Makes a user a platform superuser (operator command), audited on the platform chain.
    pub async fn grant_superuser(&self, email: &str) -> Result<bool> {
        let email = normalize_email(email)?;
        let mut tx = self.db().begin().await?;
        let user = identity::find_user_by_email(&mut tx, &email)
            .await?
            .ok_or_else(|| AppError::invalid("email", "unknown_user", "no user has this email"))?;
        let changed = identity::set_superuser(&mut tx, user.id).await?;
        if changed {
            store_audit::append_platform(
                &mut tx,
                entry("operator".into(), None, "superuser.granted", user.id, &[]),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    #[doc(hidden)]
    #[must_use]
    pub const fn platform_chain() -> Uuid {
        PLATFORM_CHAIN
    }
}
