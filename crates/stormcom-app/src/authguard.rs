//! Brute-force defence for login, second factor, step-up and bearer tokens (NIST SP
//! 800-63B §5.2.2; threat model §5 "Failed Auth Attempts", §2 Spoofing).
//!
//! - Password and second-factor attempts are counted per account (a keyed hash of the
//!   normalised email, so an unknown email is throttled exactly like a real account)
//!   and per client address. The attempt is counted as a failure *before* it is
//!   evaluated, in one transaction that refuses it outright while any subject is
//!   blocked: throttled attempts cost no argon2 run, answer the same for every email,
//!   and parallel guesses cannot slip past the count. A success or a neutral outcome
//!   (password right, second factor still to come) takes the count back.
//! - Free failures, then a doubling wait, then after 100 consecutive failures a lock
//!   that grows by an hour with each further failure (capped at a day). Only a success
//!   clears an account; an address is only forgotten after a quiet day.
//! - Trade-off (lock-out of a victim): the account delay and lock apply to every
//!   address, including one that never failed, even with the right password. Letting a
//!   "clean" address through would hand a distributed attacker one fresh guess per
//!   address. The doubling wait means locking someone out takes a sustained attack
//!   (about 21 hours of failures), each lock is audited, and an operator can lift it
//!   (`stormcom admin unlock-account`).
//! - Bearer tokens: failures are counted per client address only on the failure path;
//!   an authenticated request does no extra write or read. A process remembers the
//!   addresses it saw blocked and refuses them in memory; another process learns of the
//!   block at that address's next failure there.
//! - Every failure counts in `stormcom_failed_logins_total{kind}` and in a 15-minute
//!   window in the database; a window over 5× the rolling baseline raises one platform
//!   alert and one audit entry.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use stormcom_domain::secret::BearerToken;
use stormcom_domain::throttle::{self, SubjectKind, SubjectPolicy, WINDOW_SECONDS};
use stormcom_store::audit::NewEntry;
use stormcom_store::throttle::{self as store_throttle, FailureState, PlatformAlert};
use stormcom_store::{Tx, audit, identity};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::access::entry;
use crate::{App, AppError, Principal, Result};

/// What failed: the `kind` label of `stormcom_failed_logins_total` and of the window counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Password,
    /// The second factor at login.
    Totp,
    StepUp,
    /// A bearer token (session or API token) that did not authenticate.
    ApiToken,
}

impl FailureKind {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::Totp => "totp",
            Self::StepUp => "step_up",
            Self::ApiToken => "api_token",
        }
    }
}

pub const SPIKE_ALERT: &str = "failed_login_spike";

/// The time throttling decisions are made by. Tests move it instead of sleeping.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> OffsetDateTime + Send + Sync>);

impl Clock {
    #[must_use]
    pub fn system() -> Self {
        Self(Arc::new(OffsetDateTime::now_utc))
    }

    pub fn new(now: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    /// Whole seconds: stored blocks then compare exactly on both backends.
    fn now(&self) -> OffsetDateTime {
        let now = (self.0)();
        now.replace_nanosecond(0).unwrap_or(now)
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// Addresses this process saw blocked for bad bearer tokens, with the block's end.
pub(crate) type TokenHints = moka::sync::Cache<Vec<u8>, OffsetDateTime>;

pub(crate) fn token_hints(policy: &SubjectPolicy) -> TokenHints {
    moka::sync::Cache::builder()
        .max_capacity(100_000)
        .time_to_live(policy.max_delay + std::time::Duration::from_secs(60))
        .build()
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Subject {
    kind: SubjectKind,
    key: Vec<u8>,
}

/// An attempt counted in advance as a failure, until it is settled.
#[derive(Debug)]
pub(crate) struct Claim {
    /// Each subject with its failure count including this attempt, and the block this
    /// attempt set.
    counted: Vec<(Subject, u32, Option<OffsetDateTime>)>,
}

/// The counters after one more failure of a subject whose stored state is `state`.
fn after_failure(policy: &SubjectPolicy, state: &FailureState, now: OffsetDateTime) -> (u32, Option<OffsetDateTime>) {
    let forgotten = policy
        .forget_after
        .is_some_and(|quiet| state.last_attempt_at + quiet < now);
    let prior = if forgotten { 0 } else { state.failures };
    let failures = u32::try_from(prior.saturating_add(1)).unwrap_or(u32::MAX);
    let wait = policy.wait_after(failures);
    (failures, (!wait.is_zero()).then(|| now + wait))
}

fn too_many(until: OffsetDateTime, now: OffsetDateTime) -> AppError {
    AppError::TooManyAttempts {
        retry_after_secs: throttle::retry_after_secs((until - now).unsigned_abs()),
    }
}

/// Failure windows are kept this long at least (the spike baseline looks back 4 hours).
const WINDOW_RETENTION_SECS: i64 = 24 * 3600;

impl App {
    /// Forgets what the throttle no longer needs (the hourly job in `serve`): subjects
    /// quiet for longer than their policy remembers failures and not blocked, and failure
    /// windows older than the spike baseline and a day. Unknown emails and passing
    /// addresses would otherwise leave a row each forever. Returns (subjects, windows).
    pub async fn purge_auth_failures(&self) -> Result<(u64, u64)> {
        let now = self.clock.now();
        let policy = &self.config.auth_throttle;
        let mut tx = self.db().begin().await?;
        let mut subjects = 0;
        for kind in [SubjectKind::Account, SubjectKind::Ip, SubjectKind::TokenIp] {
            if let Some(quiet) = policy.for_subject(kind).forget_after {
                subjects += store_throttle::purge_subjects(&mut tx, kind.as_str(), now - quiet, now).await?;
            }
        }
        let keep = (WINDOW_SECONDS * (i64::from(policy.spike.baseline_windows) + 1)).max(WINDOW_RETENTION_SECS);
        let windows =
            store_throttle::purge_windows(&mut tx, throttle::window_start(now.unix_timestamp()) - keep).await?;
        tx.commit().await?;
        Ok((subjects, windows))
    }

    /// Replaces the clock of throttling decisions (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        std::sync::Arc::make_mut(&mut self.0).clock = clock;
        self
    }

    fn subject(&self, kind: SubjectKind, value: &str) -> Subject {
        let key = self
            .keys
            .master
            .derive("auth-throttle")
            .blind_index(format!("{}:{value}", kind.as_str()).as_bytes());
        Subject { kind, key }
    }

    /// `email` trimmed and lowercased, as login compares it.
    pub(crate) fn account_subject(&self, email: &str) -> Subject {
        self.subject(SubjectKind::Account, email)
    }

    pub(crate) fn ip_subject(&self, kind: SubjectKind, ip: Option<IpAddr>) -> Option<Subject> {
        ip.map(|ip| self.subject(kind, &throttle::ip_subject(ip)))
    }

    /// Counts an attempt as failed before it is evaluated; refuses it (counting nothing)
    /// while any of `subjects` is blocked.
    pub(crate) async fn claim_attempt(&self, mut subjects: Vec<Subject>) -> Result<Claim> {
        subjects.sort();
        let now = self.clock.now();
        let mut tx = self.db().begin().await?;
        let mut states = Vec::with_capacity(subjects.len());
        let mut blocked_until = None;
        for subject in &subjects {
            let state = store_throttle::lock_subject(&mut tx, subject.kind.as_str(), &subject.key, now).await?;
            if let Some(until) = state.blocked_until.filter(|until| *until > now) {
                blocked_until = blocked_until.max(Some(until));
            }
            states.push(state);
        }
        if let Some(until) = blocked_until {
            return Err(too_many(until, now));
        }
        let mut counted = Vec::with_capacity(subjects.len());
        for (subject, state) in subjects.into_iter().zip(states) {
            let policy = self.config.auth_throttle.for_subject(subject.kind);
            let (failures, block) = after_failure(policy, &state, now);
            let next = FailureState {
                failures: i64::from(failures),
                last_attempt_at: now,
                blocked_until: block,
            };
            store_throttle::put_subject(&mut tx, subject.kind.as_str(), &subject.key, &next).await?;
            counted.push((subject, failures, block));
        }
        tx.commit().await?;
        Ok(Claim { counted })
    }

    /// The attempt succeeded (inside the caller's transaction): an account's failures
    /// are forgotten; an address keeps its earlier ones, only this attempt is taken back.
    pub(crate) async fn attempt_succeeded(&self, tx: &mut Tx, claim: &Claim) -> Result<()> {
        for (subject, _, block) in &claim.counted {
            let kind = subject.kind.as_str();
            if subject.kind == SubjectKind::Account {
                store_throttle::clear_subject(tx, kind, &subject.key).await?;
            } else {
                store_throttle::undo_attempt(tx, kind, &subject.key, *block).await?;
            }
        }
        Ok(())
    }

    /// Neither a success nor a failure (the password was right and the second factor
    /// is still to come, or the server failed): the attempt is taken back.
    pub(crate) async fn attempt_withdrawn(&self, claim: &Claim) {
        let result = async {
            let mut tx = self.db().begin().await?;
            for (subject, _, block) in &claim.counted {
                store_throttle::undo_attempt(&mut tx, subject.kind.as_str(), &subject.key, *block).await?;
            }
            tx.commit().await
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "could not take back a throttled attempt");
        }
    }

    /// The attempt failed. It is counted already; this records it: the audit entry
    /// `failure`, the window count and spike rule, and an account lock when this failure
    /// reached the threshold. Errors are logged, not raised: the answer must not depend
    /// on them.
    pub(crate) async fn attempt_failed(&self, claim: &Claim, kind: FailureKind, failure: NewEntry) {
        let now = self.clock.now();
        let result = async {
            let mut tx = self.db().begin().await?;
            // The window row before the audit head, as on every path that takes both:
            // one lock order, no deadlock on PostgreSQL.
            self.count_failure(&mut tx, kind, now).await?;
            let lock = claim.counted.iter().find(|(subject, failures, _)| {
                subject.kind == SubjectKind::Account && self.config.auth_throttle.account.locks_at(*failures)
            });
            if let Some((_, failures, until)) = lock {
                let mut locked = failure.clone();
                locked.action = "auth.account_locked".into();
                locked.summary = [
                    ("failures".to_owned(), failures.to_string()),
                    (
                        "until".to_owned(),
                        until.and_then(|u| u.format(&Rfc3339).ok()).unwrap_or_default(),
                    ),
                ]
                .into();
                audit::append_platform(&mut tx, locked).await?;
                metrics::counter!("stormcom_account_lockouts_total").increment(1);
                tracing::warn!(failures, "account locked after consecutive failed attempts");
            }
            audit::append_platform(&mut tx, failure).await?;
            tx.commit().await?;
            Ok::<(), AppError>(())
        }
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "could not record a failed authentication");
        }
    }

    /// Counts one failure in its window (and the metric); raises the spike alert, once
    /// per window, when the window passes the spike rule.
    async fn count_failure(&self, tx: &mut Tx, kind: FailureKind, now: OffsetDateTime) -> Result<()> {
        metrics::counter!("stormcom_failed_logins_total", "kind" => kind.as_str()).increment(1);
        let rule = self.config.auth_throttle.spike;
        let window = throttle::window_start(now.unix_timestamp());
        let current = u64::try_from(store_throttle::count_failure(tx, window, kind.as_str()).await?).unwrap_or(0);
        if current <= rule.floor() {
            return Ok(());
        }
        let from = window - WINDOW_SECONDS * i64::from(rule.baseline_windows);
        let previous = u64::try_from(store_throttle::failures_between(tx, from, window).await?).unwrap_or(0);
        if !rule.is_spike(current, previous) {
            return Ok(());
        }
        let start = OffsetDateTime::from_unix_timestamp(window)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| window.to_string());
        let detail = format!(
            "{current} failed authentications in the 15 minutes from {start}, over {}x the baseline of {previous} in the previous {} windows",
            rule.factor, rule.baseline_windows
        );
        if let Some(id) = store_throttle::raise_platform_alert(tx, SPIKE_ALERT, &start, &detail, now).await? {
            let summary = [
                ("window", start.clone()),
                ("failures", current.to_string()),
                ("baseline_failures", previous.to_string()),
            ];
            audit::append_platform(
                tx,
                entry("system".into(), None, "security.failed_login_spike", id, &summary),
            )
            .await?;
            metrics::counter!("stormcom_alerts_raised_total", "kind" => SPIKE_ALERT).increment(1);
            tracing::warn!(window = %start, failures = current, baseline = previous, "failed authentication spike");
        }
        Ok(())
    }

    /// Resolves a bearer token like [`App::authenticate`], throttling the client address
    /// by the tokens from it that failed. Success costs nothing extra: no read, no write.
    pub async fn authenticate_from(&self, token: &BearerToken, ip: Option<IpAddr>) -> Result<Principal> {
        let subject = self.ip_subject(SubjectKind::TokenIp, ip);
        if let Some(subject) = &subject
            && let Some(until) = self.token_hints.get(&subject.key)
        {
            let now = self.clock.now();
            if until > now {
                return Err(too_many(until, now));
            }
        }
        match self.authenticate(token).await {
            Err(AppError::Unauthenticated) => Err(self.token_failed(subject).await),
            other => other,
        }
    }

    /// Records a bearer token that failed; the answer is `Unauthenticated`, or
    /// `TooManyAttempts` when another process had already blocked the address.
    async fn token_failed(&self, subject: Option<Subject>) -> AppError {
        let now = self.clock.now();
        let result = async {
            let mut tx = self.db().begin().await?;
            let mut already_blocked = None;
            if let Some(subject) = &subject {
                let kind = subject.kind.as_str();
                let state = store_throttle::lock_subject(&mut tx, kind, &subject.key, now).await?;
                match state.blocked_until.filter(|until| *until > now) {
                    Some(until) => already_blocked = Some(until),
                    None => {
                        let policy = self.config.auth_throttle.for_subject(subject.kind);
                        let (failures, block) = after_failure(policy, &state, now);
                        let next = FailureState {
                            failures: i64::from(failures),
                            last_attempt_at: now,
                            blocked_until: block,
                        };
                        store_throttle::put_subject(&mut tx, kind, &subject.key, &next).await?;
                        if let Some(until) = block {
                            self.token_hints.insert(subject.key.clone(), until);
                        }
                    }
                }
                if let Some(until) = already_blocked {
                    self.token_hints.insert(subject.key.clone(), until);
                }
            }
            self.count_failure(&mut tx, FailureKind::ApiToken, now).await?;
            tx.commit().await?;
            Ok::<_, AppError>(already_blocked)
        }
        .await;
        match result {
            Ok(Some(until)) => too_many(until, now),
            Ok(None) => AppError::Unauthenticated,
            Err(e) => {
                tracing::error!(error = %e, "could not record a failed bearer token");
                AppError::Unauthenticated
            }
        }
    }

    /// Lifts an account's throttling and lock (operator command). Returns whether there
    /// was any.
    pub async fn unlock_account(&self, email: &str) -> Result<bool> {
        let email = email.trim().to_lowercase();
        let subject = self.account_subject(&email);
        let mut tx = self.db().begin().await?;
        let existed = store_throttle::find_subject(&mut tx, subject.kind.as_str(), &subject.key)
            .await?
            .is_some_and(|state| state.failures > 0 || state.blocked_until.is_some());
        if existed {
            store_throttle::clear_subject(&mut tx, subject.kind.as_str(), &subject.key).await?;
            // The email itself stays out of the log: a user id, or nothing.
            let target = identity::find_user_by_email(&mut tx, &email)
                .await?
                .map_or_else(|| "unknown-user".to_owned(), |user| user.id.to_string());
            audit::append_platform(
                &mut tx,
                entry("operator".into(), None, "auth.account_unlocked", target, &[]),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(existed)
    }

    /// Platform-level alerts (failed-login spikes), oldest first.
    pub async fn platform_alerts(&self) -> Result<Vec<PlatformAlert>> {
        let mut reader = self.db().reader().await?;
        Ok(store_throttle::platform_alerts(&mut reader).await?)
    }
}
