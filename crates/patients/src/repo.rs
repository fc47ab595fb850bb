//! Patient queries. Every function records its audit event in the same transaction.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use clinic_domain::contact::{EmailAddress, PersonName, Phone};
use clinic_domain::ids::PatientId;
use clinic_domain::patient::{DateOfBirth, Language, NewPatient, Patient, PatientChanges};
use clinic_domain::time::ClinicZone;
use clinic_store::schema::patients;
use clinic_store::{dialect, time, DbConnection, StoreError};
use diesel::prelude::*;

use crate::audit::{self, Actor, AuditWriter, PendingEvent};

pub const SUBJECT: &str = "patient";

#[derive(Debug, thiserror::Error)]
pub enum PatientError {
    #[error("patient not found")]
    NotFound,
    #[error("patient was changed by someone else (current version {current})")]
    VersionConflict { current: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for PatientError {
    fn from(e: diesel::result::Error) -> Self {
        PatientError::Store(StoreError::Query(e))
    }
}

#[derive(Queryable, Insertable, AsChangeset)]
#[diesel(table_name = patients, treat_none_as_null = true)]
struct PatientRow {
    id: String,
    given_name: String,
    family_name: String,
    email: Option<String>,
    phone: Option<String>,
    date_of_birth: Option<String>,
    time_zone: String,
    preferred_language: String,
    email_consent: bool,
    notes: Option<String>,
    search_key: String,
    version: i64,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    archived_at: Option<NaiveDateTime>,
}

impl From<&Patient> for PatientRow {
    fn from(p: &Patient) -> Self {
        Self {
            id: p.id.to_string(),
            given_name: p.given_name.to_string(),
            family_name: p.family_name.to_string(),
            email: p.email.as_ref().map(ToString::to_string),
            phone: p.phone.as_ref().map(ToString::to_string),
            date_of_birth: p.date_of_birth.map(|d| d.date().format("%Y-%m-%d").to_string()),
            time_zone: p.time_zone.name().to_owned(),
            preferred_language: p.preferred_language.as_str().to_owned(),
            email_consent: p.email_consent,
            notes: p.notes.clone(),
            search_key: p.search_key(),
            version: p.version,
            created_at: time::to_db(p.created_at),
            updated_at: time::to_db(p.updated_at),
            archived_at: p.archived_at.map(time::to_db),
        }
    }
}

impl TryFrom<PatientRow> for Patient {
    type Error = PatientError;

    /// Stored values were validated on the way in; a value that no longer parses is
    /// corruption, reported as a store error rather than hidden.
    fn try_from(r: PatientRow) -> Result<Self, PatientError> {
        let corrupt =
            |field: &str| PatientError::Store(StoreError::Corrupt(format!("stored patient has an invalid {field}")));
        // Stored dates of birth were checked against "today" on the way in.
        let far_future = NaiveDate::MAX;
        Ok(Patient {
            id: r.id.parse().map_err(|_| corrupt("id"))?,
            given_name: PersonName::parse(&r.given_name).map_err(|_| corrupt("given_name"))?,
            family_name: PersonName::parse(&r.family_name).map_err(|_| corrupt("family_name"))?,
            email: r
                .email
                .as_deref()
                .map(EmailAddress::parse)
                .transpose()
                .map_err(|_| corrupt("email"))?,
            phone: r
                .phone
                .as_deref()
                .map(Phone::from_e164)
                .transpose()
                .map_err(|_| corrupt("phone"))?,
            date_of_birth: r
                .date_of_birth
                .as_deref()
                .map(|d| DateOfBirth::parse(d, far_future))
                .transpose()
                .map_err(|_| corrupt("date_of_birth"))?,
            time_zone: ClinicZone::parse(&r.time_zone).map_err(|_| corrupt("time_zone"))?,
            preferred_language: Language::parse(&r.preferred_language).map_err(|_| corrupt("preferred_language"))?,
            email_consent: r.email_consent,
            notes: r.notes,
            version: r.version,
            created_at: time::from_db(r.created_at),
            updated_at: time::from_db(r.updated_at),
            archived_at: r.archived_at.map(time::from_db),
        })
    }
}

/// Creates a patient.
pub fn create(
    conn: &mut DbConnection,
    actor: &Actor,
    new: NewPatient,
    now: DateTime<Utc>,
) -> Result<Patient, PatientError> {
    let patient = Patient::create(PatientId::new(), new, now);
    dialect::write_transaction(conn, |conn| {
        diesel::insert_into(patients::table)
            .values(PatientRow::from(&patient))
            .execute(conn)?;
        audit::record(conn, actor, "patient.create", SUBJECT, &patient.id.to_string(), now)?;
        Ok(patient)
    })
}

fn load(conn: &mut DbConnection, id: PatientId) -> Result<Patient, PatientError> {
    let query = patients::table.find(id.to_string());
    // The busiest read of the platform: on the native connection (see `on_native`).
    clinic_store::on_native!(conn, c => query.first::<PatientRow>(c).optional())?
        .ok_or(PatientError::NotFound)?
        .try_into()
}

/// Reads one patient, archived ones included (the record stays readable for audit).
/// The record is only returned once its audit event is committed.
pub fn get(
    conn: &mut DbConnection,
    audit: &AuditWriter,
    actor: &Actor,
    id: PatientId,
    now: DateTime<Utc>,
) -> Result<Patient, PatientError> {
    let patient = load(conn, id)?;
    audit.record(vec![read_event(actor, "patient.read", &patient, now)])?;
    Ok(patient)
}

fn read_event(actor: &Actor, action: &'static str, patient: &Patient, at: DateTime<Utc>) -> PendingEvent {
    PendingEvent {
        actor: actor.clone(),
        action,
        subject_type: SUBJECT,
        subject_id: patient.id.to_string(),
        at,
    }
}

/// Checks that an active patient exists, without reading or auditing the record (for
/// other capabilities that attach things to a patient and audit that themselves).
pub fn exists_active(conn: &mut DbConnection, id: PatientId) -> Result<bool, PatientError> {
    let count: i64 = patients::table
        .filter(patients::id.eq(id.to_string()))
        .filter(patients::archived_at.is_null())
        .count()
        .get_result(conn)?;
    Ok(count > 0)
}

/// Checks that a patient exists, archived or not (their history stays readable).
pub fn exists(conn: &mut DbConnection, id: PatientId) -> Result<bool, PatientError> {
    let count: i64 = patients::table
        .filter(patients::id.eq(id.to_string()))
        .count()
        .get_result(conn)?;
    Ok(count > 0)
}

/// Applies validated changes when `expected_version` is current.
pub fn update(
    conn: &mut DbConnection,
    actor: &Actor,
    id: PatientId,
    expected_version: i64,
    changes: PatientChanges,
    now: DateTime<Utc>,
) -> Result<Patient, PatientError> {
    dialect::write_transaction(conn, |conn| {
        let mut patient = load(conn, id)?;
        if patient.is_archived() {
            return Err(PatientError::NotFound);
        }
        if patient.version != expected_version {
            return Err(PatientError::VersionConflict {
                current: patient.version,
            });
        }
        patient.apply(changes, now);
        save_if_version(conn, &patient, expected_version)?;
        audit::record(conn, actor, "patient.update", SUBJECT, &patient.id.to_string(), now)?;
        Ok(patient)
    })
}

/// Loads patients by id without auditing, for the reminder dispatcher and planner: each
/// email's outbox row records which patient's contact details it used and when.
pub fn load_many_unaudited(conn: &mut DbConnection, ids: &[PatientId]) -> Result<Vec<Patient>, PatientError> {
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let mut out = Vec::with_capacity(ids.len());
    // Chunks keep SQLite under its bound-parameter limit.
    for chunk in ids.chunks(500) {
        let rows: Vec<PatientRow> = patients::table.filter(patients::id.eq_any(chunk)).load(conn)?;
        for row in rows {
            out.push(row.try_into()?);
        }
    }
    Ok(out)
}

/// Each patient's own time zone (for quiet hours), without reading or auditing the record.
pub fn time_zones(
    conn: &mut DbConnection,
    ids: &[PatientId],
) -> Result<std::collections::HashMap<PatientId, ClinicZone>, PatientError> {
    let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let mut out = std::collections::HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let rows: Vec<(String, String)> = patients::table
            .filter(patients::id.eq_any(chunk))
            .select((patients::id, patients::time_zone))
            .load(conn)?;
        for (id, zone) in rows {
            let corrupt = |what: &str| PatientError::Store(StoreError::Corrupt(format!("patient {id}: {what}")));
            out.insert(
                id.parse().map_err(|_| corrupt("id"))?,
                ClinicZone::parse(&zone).map_err(|_| corrupt("time_zone"))?,
            );
        }
    }
    Ok(out)
}

/// The patient asked the clinic to stop emailing them (the link in an email). Idempotent;
/// audited as `patient.email_consent_withdrawn`. Returns whether consent was on before.
pub fn withdraw_email_consent(
    conn: &mut DbConnection,
    actor: &Actor,
    id: PatientId,
    now: DateTime<Utc>,
) -> Result<bool, PatientError> {
    dialect::write_transaction(conn, |conn| {
        let mut patient = load(conn, id)?;
        if !patient.email_consent {
            return Ok(false);
        }
        let version = patient.version;
        patient.apply(
            PatientChanges {
                email_consent: Some(false),
                ..PatientChanges::default()
            },
            now,
        );
        save_if_version(conn, &patient, version)?;
        audit::record(
            conn,
            actor,
            "patient.email_consent_withdrawn",
            SUBJECT,
            &patient.id.to_string(),
            now,
        )?;
        Ok(true)
    })
}

/// Archives a patient: the record stays, lists no longer show it. Archiving twice is a 404.
pub fn archive(
    conn: &mut DbConnection,
    actor: &Actor,
    id: PatientId,
    now: DateTime<Utc>,
) -> Result<Patient, PatientError> {
    dialect::write_transaction(conn, |conn| {
        let mut patient = load(conn, id)?;
        if patient.is_archived() {
            return Err(PatientError::NotFound);
        }
        let expected = patient.version;
        patient.archive(now);
        save_if_version(conn, &patient, expected)?;
        audit::record(conn, actor, "patient.archive", SUBJECT, &patient.id.to_string(), now)?;
        Ok(patient)
    })
}

/// The compare-and-set that makes concurrent PATCHes safe even between the read and the
/// write: the row is only written if its version is still the one we read.
fn save_if_version(conn: &mut DbConnection, patient: &Patient, expected: i64) -> Result<(), PatientError> {
    let written = diesel::update(
        patients::table
            .filter(patients::id.eq(patient.id.to_string()))
            .filter(patients::version.eq(expected)),
    )
    .set(PatientRow::from(patient))
    .execute(conn)?;
    if written == 1 {
        Ok(())
    } else {
        let current = patients::table
            .find(patient.id.to_string())
            .select(patients::version)
            .first(conn)?;
        Err(PatientError::VersionConflict { current })
    }
}

/// Filters for the patient list.
#[derive(Debug, Clone, Default)]
pub struct PatientFilter {
    /// Case-insensitive substring of given name, family name or email.
    pub query: Option<String>,
    /// Only patients with an id after this (the cursor).
    pub after: Option<PatientId>,
}

pub struct PatientPage {
    pub patients: Vec<Patient>,
    /// Cursor for the next page when there is one.
    pub next: Option<PatientId>,
}

/// Active (not archived) patients in creation order. Each listed patient is audited.
pub fn list(
    conn: &mut DbConnection,
    audit: &AuditWriter,
    actor: &Actor,
    filter: &PatientFilter,
    limit: i64,
    now: DateTime<Utc>,
) -> Result<PatientPage, PatientError> {
    let mut query = patients::table.filter(patients::archived_at.is_null()).into_boxed();
    if let Some(q) = filter.query.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        query = query.filter(patients::search_key.like(like_pattern(&q.to_lowercase())).escape('\\'));
    }
    if let Some(after) = filter.after {
        query = query.filter(patients::id.gt(after.to_string()));
    }
    let mut rows: Vec<PatientRow> = query.order(patients::id.asc()).limit(limit + 1).load(conn)?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let patients = rows.into_iter().map(Patient::try_from).collect::<Result<Vec<_>, _>>()?;
    audit.record(
        patients
            .iter()
            .map(|p| read_event(actor, "patient.list", p, now))
            .collect(),
    )?;
    let next = if more { patients.last().map(|p| p.id) } else { None };
    Ok(PatientPage { patients, next })
}

/// `%term%` with LIKE's wildcards in the term escaped.
fn like_pattern(term: &str) -> String {
    let mut escaped = String::with_capacity(term.len() + 2);
    escaped.push('%');
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditEvent, AuditFilter};
    use clinic_domain::contact::PhoneRegion;
    use clinic_store::testing::TestDatabase;

    fn new_patient(given: &str, family: &str, email: Option<&str>) -> NewPatient {
        NewPatient {
            given_name: PersonName::parse(given).expect("name"),
            family_name: PersonName::parse(family).expect("name"),
            email: email.map(|e| EmailAddress::parse(e).expect("email")),
            phone: Some(Phone::parse("312 555 0123", PhoneRegion::default()).expect("phone")),
            date_of_birth: None,
            time_zone: ClinicZone::default(),
            preferred_language: Language::default(),
            email_consent: true,
            notes: None,
        }
    }

    fn events(conn: &mut DbConnection) -> Vec<AuditEvent> {
        audit::list(conn, &AuditFilter::default(), 1000).expect("audit").0
    }

    #[test]
    fn create_read_update_archive_round_trip_with_audit() {
        let db = TestDatabase::new();
        let pool = db.pool();
        let writer = AuditWriter::start(db.url().clone());
        let mut conn = clinic_store::pool::get(&pool).expect("connect");
        let actor = Actor::system();
        let now = time::now();
        let created = create(
            &mut conn,
            &actor,
            new_patient("Ann", "Lee", Some("ann@example.org")),
            now,
        )
        .expect("create");
        let read = get(&mut conn, &writer, &actor, created.id, now).expect("read");
        assert_eq!(read, created);

        let changes = PatientChanges {
            email: Some(None),
            ..PatientChanges::default()
        };
        let updated = update(&mut conn, &actor, created.id, 1, changes.clone(), now).expect("update");
        assert_eq!((updated.version, updated.email.clone()), (2, None));
        assert!(matches!(
            update(&mut conn, &actor, created.id, 1, changes, now),
            Err(PatientError::VersionConflict { current: 2 })
        ));

        archive(&mut conn, &actor, created.id, now).expect("archive");
        assert!(matches!(
            archive(&mut conn, &actor, created.id, now),
            Err(PatientError::NotFound)
        ));
        assert!(get(&mut conn, &writer, &actor, created.id, now)
            .expect("still readable")
            .is_archived());

        let actions: Vec<String> = events(&mut conn).into_iter().rev().map(|e| e.action).collect();
        assert_eq!(
            actions,
            [
                "patient.create",
                "patient.read",
                "patient.update",
                "patient.archive",
                "patient.read"
            ]
        );
    }

    #[test]
    fn list_searches_pages_and_hides_archived() {
        let db = TestDatabase::new();
        let pool = db.pool();
        let writer = AuditWriter::start(db.url().clone());
        let mut conn = clinic_store::pool::get(&pool).expect("connect");
        let actor = Actor::system();
        let now = time::now();
        let mut ids = Vec::new();
        for (g, f) in [("Ann", "Lee"), ("Bo", "Leeds"), ("Cy", "Park"), ("Di", "50%_off")] {
            ids.push(
                create(&mut conn, &actor, new_patient(g, f, None), now)
                    .expect("create")
                    .id,
            );
        }
        let search = |conn: &mut DbConnection, q: &str| {
            let filter = PatientFilter {
                query: Some(q.into()),
                after: None,
            };
            list(conn, &writer, &actor, &filter, 10, now)
                .expect("list")
                .patients
                .into_iter()
                .map(|p| p.given_name.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(search(&mut conn, "LEE"), ["Ann", "Bo"]);
        assert_eq!(search(&mut conn, "%_"), ["Di"]);
        assert_eq!(search(&mut conn, "_"), ["Di"]);

        let first = list(&mut conn, &writer, &actor, &PatientFilter::default(), 3, now).expect("page 1");
        assert_eq!(first.patients.len(), 3);
        let second = list(
            &mut conn,
            &writer,
            &actor,
            &PatientFilter {
                query: None,
                after: first.next,
            },
            3,
            now,
        )
        .expect("page 2");
        assert_eq!(second.patients.iter().map(|p| p.id).collect::<Vec<_>>(), [ids[3]]);
        assert!(second.next.is_none());

        archive(&mut conn, &actor, ids[0], now).expect("archive");
        assert_eq!(search(&mut conn, "lee"), ["Bo"]);
    }

    #[test]
    fn reads_holding_every_pooled_connection_still_get_audited() {
        let db = TestDatabase::new();
        let pool = clinic_store::pool::connect(
            db.url(),
            &clinic_store::pool::PoolOptions {
                max_size: 2,
                connection_timeout: std::time::Duration::from_secs(2),
            },
        )
        .expect("pool");
        let writer = AuditWriter::start(db.url().clone());
        let now = time::now();
        let id = {
            let mut conn = clinic_store::pool::get(&pool).expect("connect");
            create(&mut conn, &Actor::system(), new_patient("Kit", "Lo", None), now)
                .expect("create")
                .id
        };
        let readers: Vec<_> = (0..8)
            .map(|_| {
                let (pool, writer) = (pool.clone(), writer.clone());
                std::thread::spawn(move || {
                    let mut conn = clinic_store::pool::get(&pool).expect("pooled connection");
                    get(&mut conn, &writer, &Actor::system(), id, now).map(|p| p.id)
                })
            })
            .collect();
        for reader in readers {
            assert_eq!(reader.join().expect("reader thread").expect("audited read"), id);
        }
        let mut conn = clinic_store::pool::get(&pool).expect("connect");
        assert_eq!(
            events(&mut conn).iter().filter(|e| e.action == "patient.read").count(),
            8
        );
    }

    /// A deferred writer keeps what a read records until it is committed, and its clones
    /// share the same held events (the API's `db_audited` relies on both).
    #[tokio::test]
    async fn a_deferred_writer_stores_events_only_when_committed() {
        let db = TestDatabase::new();
        let pool = db.pool();
        let writer = AuditWriter::start(db.url().clone());
        let mut conn = clinic_store::pool::get(&pool).expect("connect");
        let (actor, now) = (Actor::system(), time::now());
        let created = create(&mut conn, &actor, new_patient("Ann", "Lee", None), now).expect("create");
        let reads = |conn: &mut DbConnection| events(conn).iter().filter(|e| e.action == "patient.read").count();

        let deferred = writer.deferred();
        let clone = deferred.clone();
        get(&mut conn, &clone, &actor, created.id, now).expect("read");
        get(&mut conn, &deferred, &actor, created.id, now).expect("read");
        assert_eq!(reads(&mut conn), 0, "held until committed");

        deferred.commit_deferred().await.expect("commit");
        assert_eq!(reads(&mut conn), 2);
        clone.commit_deferred().await.expect("nothing left to commit");
        assert_eq!(reads(&mut conn), 2, "each event is committed once");
    }
}
