//! TOTP second factor (RFC 6238): enrolment confirmed by a first code, login with a
//! second factor, and step-up for critical actions. Each time step is accepted at most
//! once per user (an atomic conditional update), recovery codes are single-use and
//! stored hashed, and the TOTP secret is sealed with a key outside the database.

use std::net::IpAddr;

use stormcom_domain::UserId;
use stormcom_domain::totp::{self, TotpSecret};
use stormcom_store::identity::{self, User};
use stormcom_store::{Tx, audit};
use time::OffsetDateTime;

use crate::access::entry;
use crate::authguard::FailureKind;
use crate::{App, AppError, Principal, Result};
use stormcom_domain::throttle::SubjectKind;

/// Shown once at enrolment, for the authenticator app.
#[derive(Debug)]
pub struct Enrollment {
    pub secret_base32: String,
    pub otpauth_uri: String,
}

fn associated_data(user: UserId) -> Vec<u8> {
    format!("totp:{user}").into_bytes()
}

fn now_unix() -> u64 {
    u64::try_from(OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0)
}

impl App {
    fn totp_key(&self) -> stormcom_domain::sealed::MasterKey {
        self.keys.master.derive("totp")
    }

    fn open_secret(&self, user: &User) -> Result<TotpSecret> {
        let sealed = user.totp_secret.as_deref().ok_or(AppError::InvalidMfaCode)?;
        let bytes = self
            .totp_key()
            .open(sealed, &associated_data(user.id))
            .map_err(|e| AppError::Internal(format!("TOTP secret cannot be opened: {e}")))?;
        TotpSecret::from_bytes(bytes).map_err(|e| AppError::Internal(e.to_string()))
    }

    /// Checks a TOTP code (or a recovery code) and consumes it inside `tx`.
    pub(crate) async fn check_second_factor(
        &self,
        tx: &mut Tx,
        user: &User,
        code: Option<&str>,
        recovery_code: Option<&str>,
    ) -> Result<()> {
        match (code, recovery_code) {
            (Some(code), _) => {
                let secret = self.open_secret(user)?;
                let step =
                    totp::verify(&secret, code, now_unix(), user.totp_last_step).ok_or(AppError::InvalidMfaCode)?;
                if identity::consume_totp_step(tx, user.id, step).await? {
                    Ok(())
                } else {
                    Err(AppError::InvalidMfaCode)
                }
            }
            (None, Some(recovery)) => {
                let digest = totp::recovery_code_digest(recovery);
                if identity::consume_recovery_code(tx, user.id, &digest).await? {
                    Ok(())
                } else {
                    Err(AppError::InvalidMfaCode)
                }
            }
            (None, None) => Err(AppError::MfaRequired),
        }
    }

    async fn signed_in_user(&self, principal: Principal) -> Result<User> {
        let Principal::User { user_id, .. } = principal else {
            return Err(AppError::Refused(
                "only a signed-in user can manage their second factor",
            ));
        };
        let mut reader = self.db().reader().await?;
        identity::find_user(&mut reader, user_id)
            .await?
            .ok_or(AppError::Unauthenticated)
    }

    /// Starts TOTP enrolment: a new secret, pending until confirmed with a first code.
    pub async fn enroll_totp(&self, principal: Principal, ip: Option<IpAddr>) -> Result<Enrollment> {
        let user = self.signed_in_user(principal).await?;
        if user.totp_enabled_at.is_some() {
            return Err(AppError::Conflict {
                code: "mfa_already_enabled",
                message: "TOTP is already enabled".into(),
            });
        }
        let secret = TotpSecret::generate().map_err(|e| AppError::Internal(e.to_string()))?;
        let sealed = self
            .totp_key()
            .seal(secret.as_bytes(), &associated_data(user.id))
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let mut tx = self.db().begin().await?;
        if !identity::set_pending_totp(&mut tx, user.id, &sealed).await? {
            return Err(AppError::Conflict {
                code: "mfa_already_enabled",
                message: "TOTP is already enabled".into(),
            });
        }
        audit::append_platform(
            &mut tx,
            entry(user.id.to_string(), ip, "mfa.enrollment_started", user.id, &[]),
        )
        .await?;
        tx.commit().await?;
        Ok(Enrollment {
            secret_base32: secret.base32(),
            otpauth_uri: secret.otpauth_uri(&user.email),
        })
    }

    /// Confirms enrolment with a first code; returns the ten recovery codes (shown once).
    pub async fn confirm_totp(&self, principal: Principal, code: &str, ip: Option<IpAddr>) -> Result<Vec<String>> {
        let user = self.signed_in_user(principal).await?;
        if user.totp_enabled_at.is_some() {
            return Err(AppError::Conflict {
                code: "mfa_already_enabled",
                message: "TOTP is already enabled".into(),
            });
        }
        if user.totp_secret.is_none() {
            return Err(AppError::Conflict {
                code: "mfa_not_enrolling",
                message: "start enrolment first".into(),
            });
        }
        let codes = totp::generate_recovery_codes().map_err(|e| AppError::Internal(e.to_string()))?;
        let digests: Vec<Vec<u8>> = codes.iter().map(|c| totp::recovery_code_digest(c)).collect();
        let mut tx = self.db().begin().await?;
        if let Err(e) = self.check_second_factor(&mut tx, &user, Some(code), None).await {
            drop(tx);
            self.audit_platform(entry(user.id.to_string(), ip, "mfa.confirm_failed", user.id, &[]))
                .await;
            return Err(e);
        }
        identity::enable_totp(&mut tx, user.id, &digests).await?;
        if let Principal::User { session_id, .. } = principal {
            identity::mark_stepped_up(&mut tx, session_id, OffsetDateTime::now_utc()).await?;
        }
        audit::append_platform(&mut tx, entry(user.id.to_string(), ip, "mfa.enabled", user.id, &[])).await?;
        tx.commit().await?;
        Ok(codes)
    }

    /// Proves the second factor again, for critical actions in the next few minutes.
    pub async fn step_up(
        &self,
        principal: Principal,
        code: Option<&str>,
        recovery_code: Option<&str>,
        ip: Option<IpAddr>,
    ) -> Result<OffsetDateTime> {
        let user = self.signed_in_user(principal).await?;
        let Principal::User { session_id, .. } = principal else {
            return Err(AppError::Unauthenticated);
        };
        if user.totp_enabled_at.is_none() {
            return Err(AppError::Conflict {
                code: "mfa_not_enabled",
                message: "enable TOTP first".into(),
            });
        }
        // Counted against the account (the same budget as its password) and the address.
        let mut subjects = vec![self.account_subject(&user.email)];
        subjects.extend(self.ip_subject(SubjectKind::Ip, ip));
        let claim = self.claim_attempt(subjects).await?;
        let mut tx = self.db().begin().await?;
        if let Err(e) = self.check_second_factor(&mut tx, &user, code, recovery_code).await {
            drop(tx);
            if matches!(e, AppError::InvalidMfaCode) {
                let failure = entry(user.id.to_string(), ip, "mfa.step_up_failed", user.id, &[]);
                self.attempt_failed(&claim, FailureKind::StepUp, failure).await;
            } else {
                self.attempt_withdrawn(&claim).await;
                self.audit_platform(entry(user.id.to_string(), ip, "mfa.step_up_failed", user.id, &[]))
                    .await;
            }
            return Err(e);
        }
        let at = OffsetDateTime::now_utc();
        identity::mark_stepped_up(&mut tx, session_id, at).await?;
        self.attempt_succeeded(&mut tx, &claim).await?;
        audit::append_platform(&mut tx, entry(user.id.to_string(), ip, "mfa.step_up", user.id, &[])).await?;
        tx.commit().await?;
        Ok(at + self.config.step_up_window)
    }

    /// Whether the caller proved a second factor within the step-up window.
    pub(crate) fn recently_stepped_up(&self, principal: Principal) -> bool {
        match principal {
            Principal::User {
                stepped_up_at: Some(at),
                ..
            } => OffsetDateTime::now_utc() - at <= self.config.step_up_window,
            Principal::Operator => true,
            _ => false,
        }
    }
}
