//! Signed, expiring "stop emailing me" links. The token names the outbox row the email
//! came from and an expiry, signed with HMAC-SHA256 under a secret kept in the database
//! (so every instance on one PostgreSQL accepts every other's links). It carries no
//! patient id: the row leads to the patient only inside the database.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use clinic_store::schema::app_secrets;
use clinic_store::{time, DbConnection, StoreError};
use diesel::prelude::*;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

const SECRET_NAME: &str = "email_link_signing";

/// How long a stop link works.
pub fn lifetime() -> Duration {
    Duration::days(90)
}

#[derive(Clone)]
pub struct LinkSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for LinkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSigner(..)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    Malformed,
    BadSignature,
    Expired,
}

impl LinkSigner {
    /// The signer for this database, creating its secret on first use.
    pub fn load_or_create(conn: &mut DbConnection, now: DateTime<Utc>) -> Result<Self, StoreError> {
        let mut fresh = [0u8; 32];
        rand::rng().fill_bytes(&mut fresh);
        // Two instances starting together: the first insert wins and both read it back.
        clinic_store::on_native!(conn, c => diesel::insert_into(app_secrets::table)
            .values((
                app_secrets::name.eq(SECRET_NAME),
                app_secrets::value.eq(hex::encode(fresh)),
                app_secrets::created_at.eq(time::to_db(now)),
            ))
            .on_conflict_do_nothing()
            .execute(c))?;
        let value: String = app_secrets::table
            .find(SECRET_NAME)
            .select(app_secrets::value)
            .first(conn)?;
        let key =
            hex::decode(value.trim()).map_err(|_| StoreError::Corrupt("app_secrets.email_link_signing".into()))?;
        Ok(Self { key })
    }

    /// A signer with a given key (tests, tools).
    pub fn from_key(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    /// A key for another purpose, derived from this secret (HMAC of the purpose's label), so
    /// one stored secret serves several kinds of link and no token of one kind passes as
    /// another.
    pub fn derive_key(&self, purpose: &[u8]) -> Vec<u8> {
        self.mac(purpose).finalize().into_bytes().to_vec()
    }

    /// The keyed MAC over `payload`.
    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length; this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(payload);
        mac
    }

    /// A token for the email sent from outbox row `row_id`, valid until `expires`.
    pub fn sign(&self, row_id: &str, expires: DateTime<Utc>) -> String {
        let payload = format!("{row_id}.{}", expires.timestamp());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            URL_SAFE_NO_PAD.encode(self.mac(payload.as_bytes()).finalize().into_bytes())
        )
    }

    /// The outbox row id a valid, unexpired token names.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<String, LinkError> {
        let (payload_b64, sig_b64) = token.split_once('.').ok_or(LinkError::Malformed)?;
        let payload = URL_SAFE_NO_PAD.decode(payload_b64).map_err(|_| LinkError::Malformed)?;
        let sig = URL_SAFE_NO_PAD.decode(sig_b64).map_err(|_| LinkError::Malformed)?;
        // Constant-time comparison.
        self.mac(&payload)
            .verify_slice(&sig)
            .map_err(|_| LinkError::BadSignature)?;
        let payload = String::from_utf8(payload).map_err(|_| LinkError::Malformed)?;
        let (row_id, expires) = payload.rsplit_once('.').ok_or(LinkError::Malformed)?;
        let expires: i64 = expires.parse().map_err(|_| LinkError::Malformed)?;
        if now.timestamp() > expires {
            return Err(LinkError::Expired);
        }
        Ok(row_id.to_owned())
    }
}

/// What following a stop link did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Consent withdrawn now; staff will call.
    Now,
    /// Consent was already off.
    Already,
}

/// Records a patient's "stop emailing me" from a link: consent off (audited), and an
/// outreach entry so staff phone instead. Emails already planned are then not sent (consent
/// is read at send time) and their reminders become outreach entries.
pub fn stop_emails(
    conn: &mut DbConnection,
    signer: &LinkSigner,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Result<Stopped, LinkError>, crate::ReminderError> {
    let row_id = match signer.verify(token, now) {
        Ok(id) => id,
        Err(e) => return Ok(Err(e)),
    };
    let Some(row) = crate::outbox::get(conn, &row_id)? else {
        return Ok(Err(LinkError::Malformed));
    };
    let Some(patient_id) = row.patient_id.as_deref().and_then(|p| p.parse().ok()) else {
        return Ok(Err(LinkError::Malformed));
    };
    clinic_store::dialect::write_transaction(conn, |conn| {
        let actor = clinic_patients::audit::Actor::system();
        let withdrawn = clinic_patients::repo::withdraw_email_consent(conn, &actor, patient_id, now)?;
        if !withdrawn {
            return Ok(Ok(Stopped::Already));
        }
        crate::outreach::raise(
            conn,
            vec![crate::outreach::NewEntry {
                dedupe_key: format!("email_stopped:{patient_id}:{}", now.timestamp()),
                patient_id: patient_id.to_string(),
                reason: crate::outreach::Reason::EmailStopped,
                subject_type: "patient".into(),
                subject_id: patient_id.to_string(),
                refers_to: now,
            }],
            now,
        )?;
        Ok(Ok(Stopped::Now))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, day, 12, 0, 0).single().expect("instant")
    }

    #[test]
    fn a_signed_link_names_its_row_until_it_expires() {
        let s = LinkSigner::from_key(b"k1");
        let token = s.sign("0192-row", at(10));
        assert_eq!(s.verify(&token, at(9)), Ok("0192-row".into()));
        assert_eq!(s.verify(&token, at(11)), Err(LinkError::Expired));
    }

    #[test]
    fn tampered_or_foreign_tokens_are_refused() {
        let s = LinkSigner::from_key(b"k1");
        let token = s.sign("0192-row", at(10));
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode("0192-other.9999999999"),
            token.split_once('.').expect("dot").1
        );
        assert_eq!(s.verify(&forged, at(9)), Err(LinkError::BadSignature));
        assert_eq!(
            LinkSigner::from_key(b"k2").verify(&token, at(9)),
            Err(LinkError::BadSignature)
        );
        assert_eq!(s.verify("nonsense", at(9)), Err(LinkError::Malformed));
        assert_eq!(s.verify("a.b.c", at(9)), Err(LinkError::Malformed));
    }
}
