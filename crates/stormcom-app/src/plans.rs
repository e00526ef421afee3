//! Plans and quotas. The quota check runs inside the transaction of the create it
//! guards, after locking the row that owns the counted set (see
//! `stormcom_store::plans`), so concurrent creates cannot both pass.

use stormcom_domain::{OrgId, Plan, PlanTable, Quota, StoreId};
use stormcom_store::{audit, plans, tenancy};

use crate::access::entry;
use crate::{App, AppError, Result};

impl App {
    #[must_use]
    pub fn plans(&self) -> &PlanTable {
        &self.config.plans
    }

    /// Refuses when `current` already reaches the plan's cap for `quota`.
    pub(crate) fn check_quota(&self, plan: Plan, quota: Quota, current: u64) -> Result<()> {
        let limit = self.config.plans.get(plan).max(quota);
        if current < limit {
            return Ok(());
        }
        metrics::counter!("stormcom_quota_rejections_total", "quota" => quota.as_str()).increment(1);
        Err(AppError::QuotaExceeded { quota, plan, limit })
    }

    /// Puts an organization on another plan (operator command; audited on the platform
    /// chain). A downgrade keeps existing data; it only refuses further creates.
    /// Returns the previous plan.
    pub async fn set_org_plan(&self, org: OrgId, plan: Plan) -> Result<Plan> {
        let mut tx = self.db().begin().await?;
        let previous = plans::set_org_plan(&mut tx, org, plan)
            .await?
            .ok_or(AppError::NotFound)?;
        audit::append_platform(
            &mut tx,
            entry(
                "operator".into(),
                None,
                "org.plan_changed",
                org,
                &[("from", previous.to_string()), ("to", plan.to_string())],
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(previous)
    }

    /// The organization owning a store, with its plan.
    pub async fn org_of_store(&self, store: StoreId) -> Result<(OrgId, Plan)> {
        let mut reader = self.db().reader().await?;
        let store = tenancy::find_store_by_id(&mut reader, store)
            .await?
            .ok_or(AppError::NotFound)?;
        let plan = plans::find_org_plan(&mut reader, store.org_id)
            .await?
            .ok_or(AppError::NotFound)?;
        Ok((store.org_id, plan))
    }
}
