//! The self-service links in patients' emails: `/my/appointments/{token}` for one visit and
//! `/my/book/{token}` for one pump's refill.
//!
//! A token names what it is about, never who: an appointment id, or a pump id and the refill
//! episode (the pump's last fill), plus the patient's link generation, signed with HMAC-SHA256
//! under a key derived from the database's link secret (so every instance on one PostgreSQL
//! accepts every other's). It carries no expiry: a link lives as long as what it names.
//! An appointment link works until the end of the visit's day, as the visit is now, so it
//! follows reschedules; a refill link works until the end of the pump's current due date and
//! only while no new fill has ended the episode. Revoking a patient's links bumps their
//! generation (`patient_link_state`), which every older link fails.
//!
//! The token is the only credential the patient pages accept, so it is never logged: the
//! request log names the route pattern, never the path.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use clinic_domain::ids::{AppointmentId, PatientId};
use clinic_patients::audit::{self, Actor};
use clinic_store::schema::patient_link_state;
use clinic_store::{time, DbConnection, StoreError};
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::links::LinkSigner;

/// What a link is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkSubject {
    /// One visit, whatever it is moved to.
    Appointment(AppointmentId),
    /// One refill of one pump: the episode is the pump's last fill (`None` before its first).
    Refill { pump: Uuid, episode: Option<Uuid> },
}

impl LinkSubject {
    /// How audit events and appointment history name the link (`Actor::link`).
    pub fn audit_name(&self) -> String {
        match self {
            LinkSubject::Appointment(id) => format!("appointment:{id}"),
            LinkSubject::Refill { pump, .. } => format!("refill:{pump}"),
        }
    }
}

/// A verified token: its subject and the generation it was signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkToken {
    pub subject: LinkSubject,
    pub generation: u32,
}

/// Why a token is refused before anything is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not a token of ours (wrong length, not base64, unknown kind).
    Malformed,
    /// Well-formed but not signed by us: tampered or forged.
    BadSignature,
}

const APPOINTMENT: u8 = 1;
const REFILL: u8 = 2;
/// 128 bits of HMAC-SHA256: forging one needs 2^128 tries, and the rate limits allow a few a minute.
const MAC_LEN: usize = 16;

/// Signs and verifies self-service tokens.
#[derive(Clone)]
pub struct PatientLinks {
    key: Vec<u8>,
}

impl std::fmt::Debug for PatientLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PatientLinks(..)")
    }
}

impl PatientLinks {
    /// The signer under the database's link secret; a derived key, so a stop-link token can
    /// never pass as a self-service one or the other way round.
    pub fn from_secret(secret: &LinkSigner) -> Self {
        Self {
            key: secret.derive_key(b"patient self-service links v1"),
        }
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(payload);
        mac
    }

    pub fn sign(&self, subject: LinkSubject, generation: u32) -> String {
        let mut payload = Vec::with_capacity(37 + MAC_LEN + 16);
        match subject {
            LinkSubject::Appointment(id) => {
                payload.push(APPOINTMENT);
                payload.extend_from_slice(id.as_uuid().as_bytes());
            }
            LinkSubject::Refill { pump, episode } => {
                payload.push(REFILL);
                payload.extend_from_slice(pump.as_bytes());
                payload.extend_from_slice(episode.unwrap_or(Uuid::nil()).as_bytes());
            }
        }
        payload.extend_from_slice(&generation.to_be_bytes());
        let tag = self.mac(&payload).finalize().into_bytes();
        payload.extend_from_slice(&tag[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(payload)
    }

    pub fn verify(&self, token: &str) -> Result<LinkToken, TokenError> {
        // The longest token is 71 characters; refuse anything far longer before decoding it.
        if token.len() > 96 {
            return Err(TokenError::Malformed);
        }
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| TokenError::Malformed)?;
        let body_len = match raw.first() {
            Some(&APPOINTMENT) => 1 + 16 + 4,
            Some(&REFILL) => 1 + 16 + 16 + 4,
            _ => return Err(TokenError::Malformed),
        };
        if raw.len() != body_len + MAC_LEN {
            return Err(TokenError::Malformed);
        }
        let (body, tag) = raw.split_at(body_len);
        // Constant-time comparison of the truncated tag.
        self.mac(body)
            .verify_truncated_left(tag)
            .map_err(|_| TokenError::BadSignature)?;
        let uuid_at = |at: usize| Uuid::from_slice(&body[at..at + 16]).map_err(|_| TokenError::Malformed);
        let generation_at = |at: usize| {
            let bytes: [u8; 4] = body[at..at + 4].try_into().map_err(|_| TokenError::Malformed)?;
            Ok(u32::from_be_bytes(bytes))
        };
        Ok(match body[0] {
            APPOINTMENT => LinkToken {
                subject: LinkSubject::Appointment(AppointmentId::from(uuid_at(1)?)),
                generation: generation_at(17)?,
            },
            _ => {
                let episode = uuid_at(17)?;
                LinkToken {
                    subject: LinkSubject::Refill {
                        pump: uuid_at(1)?,
                        episode: (!episode.is_nil()).then_some(episode),
                    },
                    generation: generation_at(33)?,
                }
            }
        })
    }
}

/// The patient's current link generation (0 until their links are first revoked).
pub fn generation(conn: &mut DbConnection, patient: PatientId) -> Result<u32, StoreError> {
    let stored: Option<i64> = patient_link_state::table
        .find(patient.to_string())
        .select(patient_link_state::generation)
        .first(conn)
        .optional()?;
    Ok(stored.and_then(|g| u32::try_from(g).ok()).unwrap_or(0))
}

/// Ends every link the patient was sent (the next emails carry new ones). Audited as
/// `patient.links_revoked`; returns the new generation.
pub fn revoke_all(
    conn: &mut DbConnection,
    actor: &Actor,
    patient: PatientId,
    now: DateTime<Utc>,
) -> Result<u32, StoreError> {
    clinic_store::dialect::write_transaction(conn, |conn| {
        let next = generation(conn, patient)?.saturating_add(1);
        let row = || {
            (
                patient_link_state::generation.eq(i64::from(next)),
                patient_link_state::revoked_at.eq(time::to_db(now)),
                patient_link_state::revoked_by_token_id.eq(actor.token_id.map(|t| t.to_string())),
            )
        };
        // Inside the writer's transaction (SQLite) or under the row's lock once it exists
        // (PostgreSQL); two first revocations at once: one insert fails, and is retried by
        // whoever asked (it is an admin action, not a hot path).
        let updated = diesel::update(patient_link_state::table.find(patient.to_string()))
            .set(row())
            .execute(conn)?;
        if updated == 0 {
            diesel::insert_into(patient_link_state::table)
                .values((patient_link_state::patient_id.eq(patient.to_string()), row()))
                .execute(conn)?;
        }
        audit::record(
            conn,
            actor,
            "patient.links_revoked",
            "patient",
            &patient.to_string(),
            now,
        )?;
        Ok(next)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> PatientLinks {
        PatientLinks::from_secret(&LinkSigner::from_key(b"k1"))
    }

    #[test]
    fn tokens_name_their_subject_and_generation_and_nothing_else() {
        let l = links();
        let appointment = LinkSubject::Appointment(AppointmentId::new());
        let refill = LinkSubject::Refill {
            pump: Uuid::now_v7(),
            episode: Some(Uuid::now_v7()),
        };
        let first = LinkSubject::Refill {
            pump: Uuid::now_v7(),
            episode: None,
        };
        for (subject, generation) in [(appointment, 0), (refill, 7), (first, u32::MAX)] {
            let token = l.sign(subject, generation);
            assert!(
                token.len() <= 71
                    && token
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            assert_eq!(l.verify(&token), Ok(LinkToken { subject, generation }));
        }
        assert_eq!(l.sign(appointment, 0).len(), 50);
    }

    #[test]
    fn tampered_foreign_and_stop_link_tokens_are_refused() {
        let l = links();
        let token = l.sign(LinkSubject::Appointment(AppointmentId::new()), 0);
        let mut raw = URL_SAFE_NO_PAD.decode(&token).expect("base64");
        raw[5] ^= 1;
        assert_eq!(l.verify(&URL_SAFE_NO_PAD.encode(&raw)), Err(TokenError::BadSignature));
        let other = PatientLinks::from_secret(&LinkSigner::from_key(b"k2"));
        assert_eq!(other.verify(&token), Err(TokenError::BadSignature));
        for junk in ["", "x", "a.b", &token[..token.len() - 2], &"A".repeat(200)] {
            assert_eq!(l.verify(junk), Err(TokenError::Malformed), "{junk:?}");
        }
        // A stop link is signed under the underived key: no use here.
        let stop = LinkSigner::from_key(b"k1").sign("row", Utc::now());
        assert!(l.verify(&stop).is_err());
    }
}
