//! Customer personal data at rest: each field sealed with a per-store key derived from the
//! master key (kept outside the database), bound by its associated data to the store, the
//! row and the field, and emails found by a keyed blind index.

use serde::{Deserialize, Serialize};
use stormcom_domain::StoreId;
use stormcom_domain::sealed::MasterKey;

use crate::{App, AppError, Result};

/// A shipping address as the shopper gave it. Never logged.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub line1: String,
    #[serde(default)]
    pub line2: String,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

impl std::fmt::Debug for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Address(<redacted>)")
    }
}

/// Sealed (email, name, address) of one row.
pub(crate) type SealedContact = (Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);

/// Decrypted contact details, for staff with `orders:read`. Never logged.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Contact {
    pub email: String,
    pub name: Option<String>,
    pub address: Option<Address>,
}

impl std::fmt::Debug for Contact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Contact(<redacted>)")
    }
}

impl App {
    fn pii_key(&self, store: StoreId) -> MasterKey {
        self.keys.master.derive(&format!("pii:{store}"))
    }

    /// The blind index of a normalised email in one store.
    pub(crate) fn email_index(&self, store: StoreId, email: &str) -> Vec<u8> {
        self.keys
            .master
            .derive(&format!("blind-index:{store}"))
            .blind_index(email.as_bytes())
    }

    pub(crate) fn seal_field(&self, store: StoreId, row: &str, field: &str, value: &[u8]) -> Result<Vec<u8>> {
        self.pii_key(store)
            .seal(value, format!("{store}:{row}:{field}").as_bytes())
            .map_err(|e| AppError::Internal(format!("sealing failed: {e}")))
    }

    pub(crate) fn open_field(&self, store: StoreId, row: &str, field: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        self.pii_key(store)
            .open(sealed, format!("{store}:{row}:{field}").as_bytes())
            .map_err(|e| AppError::Internal(format!("a sealed {field} does not open: {e}")))
    }

    /// Seals a contact for a row: (email, name, address) ciphertexts.
    pub(crate) fn seal_contact(&self, store: StoreId, row: &str, contact: &Contact) -> Result<SealedContact> {
        let email = self.seal_field(store, row, "email", contact.email.as_bytes())?;
        let name = contact
            .name
            .as_ref()
            .map(|n| self.seal_field(store, row, "name", n.as_bytes()))
            .transpose()?;
        let address = contact
            .address
            .as_ref()
            .map(|a| {
                let json = serde_json::to_vec(a).map_err(|e| AppError::Internal(e.to_string()))?;
                self.seal_field(store, row, "address", &json)
            })
            .transpose()?;
        Ok((email, name, address))
    }

    pub(crate) fn open_contact(
        &self,
        store: StoreId,
        row: &str,
        email: &[u8],
        name: Option<&[u8]>,
        address: Option<&[u8]>,
    ) -> Result<Contact> {
        let text = |bytes: Vec<u8>| String::from_utf8(bytes).map_err(|e| AppError::Internal(e.to_string()));
        Ok(Contact {
            email: text(self.open_field(store, row, "email", email)?)?,
            name: name
                .map(|n| self.open_field(store, row, "name", n).and_then(text))
                .transpose()?,
            address: address
                .map(|a| {
                    let json = self.open_field(store, row, "address", a)?;
                    serde_json::from_slice(&json).map_err(|e| AppError::Internal(e.to_string()))
                })
                .transpose()?,
        })
    }
}
