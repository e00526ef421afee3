//! Keys that must not live in the database: the master key that seals secrets at rest
//! (TOTP secrets now, customer PII later) and the Ed25519 key that signs audit
//! checkpoints. Someone who can rewrite the database still cannot forge either.

use std::fmt;

use stormcom_domain::audit::CheckpointKey;
use stormcom_domain::sealed::MasterKey;

#[derive(Clone)]
pub struct Keys {
    pub master: MasterKey,
    pub checkpoint: CheckpointKey,
}

impl Keys {
    /// Fresh random keys (tests, first start).
    pub fn generate() -> Result<Self, String> {
        Ok(Self {
            master: MasterKey::generate().map_err(|e| e.to_string())?,
            checkpoint: CheckpointKey::generate().map_err(|e| e.to_string())?,
        })
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}
