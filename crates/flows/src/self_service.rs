//! What a patient may do from the self-service links in their emails: see a visit and
//! confirm, reschedule or cancel it (`/my/appointments/{token}`), and book the refill a
//! reminder is about (`/my/book/{token}`).
//!
//! Every action calls the same use case staff call over REST ([`crate::appointments`]), with
//! the patient's link as the [`Actor`], so validation, the double-booking guarantee, emails
//! and audit are the same. What this module adds is the patient's side of the rules: which
//! link is still good, what the clinic lets patients do (`clinic_reminders::self_service`),
//! the cut-off before a visit, and stale forms (the visit changed since the page was shown).
//! Reads made for a page are audited against the link, like any read of patient data.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use clinic_domain::ids::{PatientId, ProviderId};
use clinic_domain::patient::Patient;
use clinic_domain::scheduling::{AppointmentStatus, Slot, Span};
use clinic_domain::time::ClinicZone;
use clinic_patients::audit::{Actor, AuditWriter, PendingEvent};
use clinic_pumps::registry::{self, Pump};
use clinic_pumps::worklist;
use clinic_reminders::outreach::{self, NewEntry, Reason};
use clinic_reminders::patient_links::{self, LinkSubject, PatientLinks};
use clinic_reminders::self_service::{self as policy, RescheduleTo, SelfServiceSettings};
use clinic_scheduling::appointments::{self, Appointment, Booking, NewAppointment};
use clinic_scheduling::providers::Provider;
use clinic_scheduling::types::REFILL;
use clinic_store::{dialect, DbConnection};

use crate::FlowError;

/// What the self-service use cases work with besides the database: the link signer, and a
/// short-lived cache of free times (see [`TimesCache`]).
#[derive(Clone)]
pub struct Links {
    pub signer: PatientLinks,
    pub times: TimesCache,
    pub settings: SettingsCache,
}

impl Links {
    fn sign(&self, subject: LinkSubject, generation: u32) -> String {
        self.signer.sign(subject, generation)
    }

    fn verify(&self, token: &str) -> Result<patient_links::LinkToken, patient_links::TokenError> {
        self.signer.verify(token)
    }
}

/// Free times for one question (type, provider, window to the minute), kept for a few
/// seconds: working them out over two weeks of several providers' calendars is most of what
/// a booking page costs, and many patients open their pages at once after a batch of
/// reminders. Whoever changes a calendar in this process clears it (the API clears it with
/// its availability cache, after every booking, reschedule, status change and calendar edit);
/// another instance's changes show within [`TIMES_TTL`]. Booking re-checks the calendar, so a
/// stale answer can at worst offer a time that is then refused as taken.
#[derive(Clone)]
pub struct TimesCache(moka::sync::Cache<TimesKey, FreeTimes>);

/// Type code, provider (or any), window start and end (Unix seconds).
type TimesKey = (String, Option<ProviderId>, i64, i64);

/// The providers' free times merged and sorted, as [`Offer`] holds them.
type FreeTimes = std::sync::Arc<Offer>;

/// How long an answer is kept.
pub const TIMES_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl Default for TimesCache {
    fn default() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(1_000)
                .time_to_live(TIMES_TTL)
                .build(),
        )
    }
}

impl TimesCache {
    /// After any change to a calendar.
    pub fn clear(&self) {
        self.0.invalidate_all();
    }
}

/// The clinic's self-service settings as the pages show them, kept for [`TIMES_TTL`]: every
/// page read them, one round trip each. Whoever saves them clears it (the API does); another
/// instance's change shows on its pages within the TTL. Actions (confirm, reschedule, cancel,
/// book) always read the stored settings, so a page shown before a change cannot act against it.
#[derive(Clone)]
pub struct SettingsCache(moka::sync::Cache<(), std::sync::Arc<SelfServiceSettings>>);

impl Default for SettingsCache {
    fn default() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(1)
                .time_to_live(TIMES_TTL)
                .build(),
        )
    }
}

impl SettingsCache {
    /// After the settings are saved.
    pub fn clear(&self) {
        self.0.invalidate_all();
    }

    /// The settings for a page: kept ones, else the stored ones.
    fn for_page(&self, conn: &mut DbConnection) -> Result<std::sync::Arc<SelfServiceSettings>, FlowError> {
        if let Some(kept) = self.0.get(&()) {
            return Ok(kept);
        }
        let stored = std::sync::Arc::new(policy::load(conn)?.settings);
        self.0.insert((), stored.clone());
        Ok(stored)
    }
}

/// How far ahead a patient may move a visit from their link.
pub const RESCHEDULE_DAYS: i64 = 28;
/// The most times a page offers on one day: spread over the day, so that a page shows many
/// days to choose from rather than every quarter hour of the first one.
pub const TIMES_PER_DAY: usize = 8;
/// The most days a page offers.
pub const MAX_DAYS: usize = 14;

/// Why a link opens nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not one of our links (tampered, made up, or about something that no longer exists).
    Invalid,
    /// The link's time is over: after the visit's day, or after the refill's due date.
    Expired,
    /// The clinic revoked the patient's links.
    Revoked,
    /// A refill link whose refill happened (a new fill started another episode).
    Done,
}

/// Why a visit's page offers only the phone number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneOnly {
    Cancelled,
    /// Checked in, completed or missed.
    Over,
    /// Its start has passed.
    Past,
    /// Within the clinic's cut-off before the start.
    TooLate,
    /// The clinic does not offer self-service for this kind of visit.
    NotOffered,
}

/// Why an action was not done; each is a page with the clinic's phone.
#[derive(Debug)]
pub enum SelfServiceError {
    Refused(Refused),
    /// The action is not open for this visit now.
    PhoneOnly(PhoneOnly),
    /// The patient may not do this (cancelling when the clinic does not allow it).
    NotAllowed,
    /// The visit changed since the page was shown: show it again.
    Stale,
    /// The chosen time is not one the page offered, or was taken meanwhile.
    SlotGone,
    /// A refill visit is already booked (another tab, or staff): show it.
    AlreadyBooked,
    Flow(FlowError),
}

impl<E: Into<FlowError>> From<E> for SelfServiceError {
    fn from(e: E) -> Self {
        SelfServiceError::Flow(e.into())
    }
}

/// A non-clinical name for a kind of visit: the type's own name unless it would say
/// something clinical on a page anyone near the patient can read.
pub fn visit_label(type_name: &str) -> String {
    if clinic_reminders::templates::clinical_words(type_name).is_empty() {
        type_name.to_owned()
    } else {
        "Appointment".to_owned()
    }
}

/// A visit as its manage page shows it.
#[derive(Debug, Clone)]
pub struct Visit {
    pub appointment: Appointment,
    pub provider_name: String,
    pub patient_zone: ClinicZone,
    pub label: String,
    /// Set when the page offers only the phone.
    pub phone_only: Option<PhoneOnly>,
    pub can_confirm: bool,
    pub can_reschedule: bool,
    pub can_cancel: bool,
    /// Until when the patient may change it online (the clinic's cut-off before the start).
    pub changes_until: DateTime<Utc>,
    /// For a cancelled or past refill visit: a booking link for the pump that still has no
    /// visit, so the patient can book again.
    pub rebook_token: Option<String>,
}

/// A refill as its booking page shows it.
#[derive(Debug, Clone)]
pub struct Refill {
    pub due_date: NaiveDate,
    pub patient_zone: ClinicZone,
    /// Times to choose from, soonest first (empty once a visit is booked).
    pub slots: Vec<(Provider, Slot)>,
    /// The booked refill visit, with its manage link.
    pub booked: Option<(Appointment, String)>,
}

/// A verified link: who acts, and what about.
struct Opened {
    actor: Actor,
    patient: Patient,
    generation: u32,
}

fn read_event(actor: &Actor, action: &'static str, patient: PatientId, now: DateTime<Utc>) -> PendingEvent {
    PendingEvent {
        actor: actor.clone(),
        action,
        subject_type: "patient",
        subject_id: patient.to_string(),
        at: now,
    }
}

/// Checks the token's signature and its patient's link generation.
fn open(
    conn: &mut DbConnection,
    links: &Links,
    token: &str,
    patient_of: impl FnOnce(&mut DbConnection, LinkSubject) -> Result<Option<PatientId>, FlowError>,
    request_id: Option<String>,
) -> Result<(Opened, LinkSubject), SelfServiceError> {
    let verified = links
        .verify(token)
        .map_err(|_| SelfServiceError::Refused(Refused::Invalid))?;
    let patient_id = patient_of(conn, verified.subject)?.ok_or(SelfServiceError::Refused(Refused::Invalid))?;
    let patient = clinic_patients::repo::load_many_unaudited(conn, &[patient_id])?
        .pop()
        .ok_or(SelfServiceError::Refused(Refused::Invalid))?;
    if patient.is_archived() {
        return Err(SelfServiceError::Refused(Refused::Revoked));
    }
    let generation = patient_links::generation(conn, patient.id)?;
    if verified.generation != generation {
        return Err(SelfServiceError::Refused(Refused::Revoked));
    }
    let actor = Actor::patient_link(verified.subject.audit_name(), request_id);
    Ok((
        Opened {
            actor,
            patient,
            generation,
        },
        verified.subject,
    ))
}

/// The appointment a visit link names, with its provider's name, if it exists.
fn appointment_of(conn: &mut DbConnection, subject: LinkSubject) -> Result<Option<(Appointment, String)>, FlowError> {
    let LinkSubject::Appointment(id) = subject else {
        return Ok(None);
    };
    match appointments::load_with_provider_name(conn, id) {
        Ok(a) => Ok(Some(a)),
        Err(clinic_scheduling::SchedulingError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Opens a visit link: the appointment as it is now and its provider's name, unless the
/// link is over.
fn open_visit(
    conn: &mut DbConnection,
    links: &Links,
    token: &str,
    request_id: Option<String>,
    now: DateTime<Utc>,
) -> Result<(Opened, Appointment, String), SelfServiceError> {
    let mut found = None;
    let (opened, _) = open(
        conn,
        links,
        token,
        |conn, subject| {
            found = appointment_of(conn, subject)?;
            Ok(found.as_ref().map(|(a, _)| a.patient_id))
        },
        request_id,
    )?;
    let (a, provider_name) = found.ok_or(SelfServiceError::Refused(Refused::Invalid))?;
    // The link lives until the end of the visit's day, as the visit is now.
    let zone = a.provider_zone;
    if now >= worklist::end_of_day(zone, zone.local_date(a.start)) {
        return Err(SelfServiceError::Refused(Refused::Expired));
    }
    Ok((opened, a, provider_name))
}

/// What the patient may do with `a` now.
fn visit_view(
    conn: &mut DbConnection,
    links: &Links,
    opened: &Opened,
    (a, provider_name): (Appointment, String),
    settings: &SelfServiceSettings,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Visit, SelfServiceError> {
    let phone_only = match a.status {
        AppointmentStatus::Cancelled => Some(PhoneOnly::Cancelled),
        AppointmentStatus::Booked if now >= a.start => Some(PhoneOnly::Past),
        AppointmentStatus::Booked if !settings.allows(&a.type_code) => Some(PhoneOnly::NotOffered),
        AppointmentStatus::Booked if now >= a.start - settings.cutoff() => Some(PhoneOnly::TooLate),
        AppointmentStatus::Booked => None,
        _ => Some(PhoneOnly::Over),
    };
    let open = phone_only.is_none();
    let rebook_token = if a.type_code == REFILL && matches!(phone_only, Some(PhoneOnly::Cancelled | PhoneOnly::Past)) {
        rebook_token(conn, links, opened, settings, clinic_zone, now)?
    } else {
        None
    };
    Ok(Visit {
        provider_name,
        patient_zone: opened.patient.time_zone,
        label: visit_label(&a.type_name),
        can_confirm: open && a.patient_confirmed_at.is_none(),
        can_reschedule: open,
        can_cancel: open && settings.patients_may_cancel,
        changes_until: a.start - settings.cutoff(),
        phone_only,
        rebook_token,
        appointment: a,
    })
}

/// A booking link for the patient's first active pump that has no refill booked and whose
/// due date has not passed, if the clinic offers refill booking.
fn rebook_token(
    conn: &mut DbConnection,
    links: &Links,
    opened: &Opened,
    settings: &SelfServiceSettings,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Option<String>, SelfServiceError> {
    if !settings.refill_booking {
        return Ok(None);
    }
    for pump in registry::active_for_patient_unaudited(conn, opened.patient.id)? {
        if now >= worklist::end_of_day(clinic_zone, pump.forecast.due_date) {
            continue;
        }
        if worklist::refill_booked_for(conn, &pump, clinic_zone, now)?.is_some() {
            continue;
        }
        let subject = refill_subject(conn, &pump)?;
        return Ok(Some(links.sign(subject, opened.generation)));
    }
    Ok(None)
}

fn uuid_of(id: &str) -> Result<uuid::Uuid, FlowError> {
    uuid::Uuid::parse_str(id).map_err(|_| FlowError::Store(clinic_store::StoreError::Corrupt(format!("id {id}"))))
}

/// The subject of the refill link for `pump` as it is now (its current episode).
fn refill_subject(conn: &mut DbConnection, pump: &Pump) -> Result<LinkSubject, FlowError> {
    let episode = registry::last_fill_id(conn, &pump.id)?;
    Ok(LinkSubject::Refill {
        pump: uuid_of(&pump.id)?,
        episode: episode.as_deref().map(uuid_of).transpose()?,
    })
}

/// The manage page of a visit (audited as `appointment.read` against the link).
pub fn visit(
    conn: &mut DbConnection,
    audit: &AuditWriter,
    links: &Links,
    token: &str,
    request_id: Option<String>,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Visit, SelfServiceError> {
    let (opened, a, provider_name) = open_visit(conn, links, token, request_id, now)?;
    let settings = links.settings.for_page(conn)?;
    let view = visit_view(conn, links, &opened, (a, provider_name), &settings, clinic_zone, now)?;
    audit.record(vec![read_event(
        &opened.actor,
        "appointment.read",
        opened.patient.id,
        now,
    )])?;
    Ok(view)
}

/// The latest instant a refill visit may start: before the end of the earliest due date of
/// the patient's active pumps (a refill visit is never offered after it).
fn refill_deadline(
    conn: &mut DbConnection,
    patient: PatientId,
    clinic_zone: ClinicZone,
) -> Result<Option<DateTime<Utc>>, FlowError> {
    Ok(registry::active_for_patient_unaudited(conn, patient)?
        .iter()
        .map(|p| worklist::end_of_day(clinic_zone, p.forecast.due_date))
        .min())
}

/// Free times, each with the index of its provider in `providers` (a provider is cloned
/// only for the times a page shows, not for each of the thousands of free quarter hours).
#[derive(Debug, Default, Clone)]
struct Offer {
    providers: Vec<Provider>,
    /// Soonest first.
    slots: Vec<(usize, Slot)>,
}

impl Offer {
    /// Whether `provider` is free at `start` among these times.
    fn contains(&self, provider: ProviderId, start: DateTime<Utc>) -> bool {
        self.slots
            .iter()
            .any(|(i, s)| s.start == start && self.providers[*i].id == provider)
    }

    /// What a page shows: at most [`TIMES_PER_DAY`] times on each of the first [`MAX_DAYS`]
    /// days that have any, evenly spaced over each day's free times (its first and last
    /// kept), in order.
    fn spread(&self, zone: ClinicZone) -> Vec<(Provider, Slot)> {
        let mut days: Vec<&[(usize, Slot)]> = Vec::new();
        let mut rest = self.slots.as_slice();
        while let Some((_, first)) = rest.first() {
            if days.len() == MAX_DAYS {
                break;
            }
            // One zone lookup per day rather than per free quarter hour.
            let day_ends = worklist::end_of_day(zone, zone.local_date(first.start));
            let n = rest.iter().take_while(|(_, s)| s.start < day_ends).count();
            let (today, later) = rest.split_at(n);
            days.push(today);
            rest = later;
        }
        days.into_iter()
            .flat_map(|day| {
                let n = day.len();
                let picks: Vec<usize> = if n <= TIMES_PER_DAY {
                    (0..n).collect()
                } else {
                    (0..TIMES_PER_DAY).map(|i| i * (n - 1) / (TIMES_PER_DAY - 1)).collect()
                };
                picks.into_iter().map(move |k| day[k])
            })
            .map(|(i, s)| (self.providers[i].clone(), s))
            .collect()
    }
}

/// Free times for `type_code` from now to `until`, with the providers the clinic lets the
/// patient choose (pages show a [spread](Offer::spread) of them).
#[allow(clippy::too_many_arguments)]
fn offered_slots(
    conn: &mut DbConnection,
    times: &TimesCache,
    type_code: &str,
    provider: Option<ProviderId>,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Offer, FlowError> {
    let from = from.max(now);
    if until <= from {
        return Ok(Offer::default());
    }
    // Asked as of the start of the minute, so that the pages of that minute share one answer;
    // times before `now` are dropped below.
    let minute =
        |t: DateTime<Utc>| DateTime::from_timestamp(t.timestamp() - t.timestamp().rem_euclid(60), 0).unwrap_or(t);
    let (asked_from, asked_now) = (minute(from), minute(now));
    let key = (
        type_code.to_owned(),
        provider,
        asked_from.timestamp(),
        until.timestamp(),
    );
    let work_out = |conn: &mut DbConnection| -> Result<FreeTimes, FlowError> {
        let window = Span::new(asked_from, until);
        let free = appointments::availability(conn, provider, type_code, window, clinic_zone, asked_now)?;
        // Merged and sorted once per answer kept, not on every page that reads it.
        let mut offer = Offer::default();
        for (i, (p, slots)) in free.into_iter().enumerate() {
            offer
                .slots
                .extend(slots.into_iter().filter(|s| s.start < until).map(|s| (i, s)));
            offer.providers.push(p);
        }
        let providers = &offer.providers;
        offer
            .slots
            .sort_by(|(a, x), (b, y)| (x.start, &providers[*a].name).cmp(&(y.start, &providers[*b].name)));
        Ok(std::sync::Arc::new(offer))
    };
    // When an answer runs out while many pages ask for it (a batch of reminders), one of them
    // works it out and the others wait for that answer instead of all working it out at once.
    let mut failed = None;
    let found = match times.0.try_get_with(key, || {
        work_out(&mut *conn).map_err(|e| {
            failed = Some(e);
        })
    }) {
        Ok(found) => found,
        Err(_) => match failed {
            Some(e) => return Err(e),
            // Another page's attempt failed while this one waited: try once more, uncached.
            None => work_out(conn)?,
        },
    };
    // The answer is as of the start of the minute: the times before `from` are dropped.
    let first = found.slots.partition_point(|(_, s)| s.start < from);
    Ok(Offer {
        providers: found.providers.clone(),
        slots: found.slots[first..].to_vec(),
    })
}

/// The times a visit may move to: the same type, the providers the clinic allows, from now
/// for [`RESCHEDULE_DAYS`], and for a refill visit never after the pump's due date.
fn reschedule_slots(
    conn: &mut DbConnection,
    times: &TimesCache,
    a: &Appointment,
    settings: &SelfServiceSettings,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Offer, FlowError> {
    let mut until = now + Duration::days(RESCHEDULE_DAYS);
    if a.type_code == REFILL {
        if let Some(deadline) = refill_deadline(conn, a.patient_id, clinic_zone)? {
            until = until.min(deadline);
        }
    }
    let provider = match settings.reschedule_to {
        RescheduleTo::SameProvider => Some(a.provider_id),
        RescheduleTo::AnyProvider => None,
    };
    let mut offer = offered_slots(conn, times, &a.type_code, provider, now, until, clinic_zone, now)?;
    offer
        .slots
        .retain(|(_, s)| s.start != a.start || settings.reschedule_to == RescheduleTo::AnyProvider);
    Ok(offer)
}

/// The reschedule page: the visit and the times it may move to (audited).
pub fn reschedule_options(
    conn: &mut DbConnection,
    audit: &AuditWriter,
    links: &Links,
    token: &str,
    request_id: Option<String>,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<(Visit, Vec<(Provider, Slot)>), SelfServiceError> {
    let v = visit(conn, audit, links, token, request_id, clinic_zone, now)?;
    if !v.can_reschedule {
        return Ok((v, Vec::new()));
    }
    let settings = links.settings.for_page(conn)?;
    // The page shows a spread of them; a post may take any free one (the spread of a calendar
    // that changed since would drop times that are still free).
    let slots = reschedule_slots(conn, &links.times, &v.appointment, &settings, clinic_zone, now)?.spread(clinic_zone);
    Ok((v, slots))
}

/// Opens a visit link for an action on the form shown at `expected_version`.
fn for_action(
    conn: &mut DbConnection,
    links: &Links,
    token: &str,
    expected_version: i64,
    request_id: Option<String>,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<(Opened, Visit, SelfServiceSettings), SelfServiceError> {
    let (opened, a, provider_name) = open_visit(conn, links, token, request_id, now)?;
    let settings = policy::load(conn)?.settings;
    let v = visit_view(conn, links, &opened, (a, provider_name), &settings, clinic_zone, now)?;
    // The version the page showed, locked: a change committed since (staff, another tab)
    // makes the form stale rather than being overwritten by it.
    if v.appointment.version != expected_version
        || !appointments::lock_at_version(conn, v.appointment.id, expected_version)?
    {
        return Err(SelfServiceError::Stale);
    }
    if let Some(why) = v.phone_only {
        return Err(SelfServiceError::PhoneOnly(why));
    }
    Ok((opened, v, settings))
}

/// Writes an action in the writer's transaction; a version race lost on PostgreSQL is a
/// stale form, like one lost before the transaction began.
fn in_transaction<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, SelfServiceError>,
) -> Result<T, SelfServiceError> {
    let result = dialect::write_transaction(conn, |conn| f(conn).map_err(Wrapped));
    match result {
        Ok(v) => Ok(v),
        Err(Wrapped(SelfServiceError::Flow(FlowError::Scheduling(clinic_scheduling::SchedulingError::Conflict {
            code: "version_conflict",
            ..
        })))) => Err(SelfServiceError::Stale),
        Err(Wrapped(e)) => Err(e),
    }
}

/// `write_transaction` needs an error it can make from diesel's.
struct Wrapped(SelfServiceError);

impl From<diesel::result::Error> for Wrapped {
    fn from(e: diesel::result::Error) -> Self {
        Wrapped(SelfServiceError::Flow(e.into()))
    }
}

/// The patient confirms the visit (history `patient_confirmed`, audit `appointment.confirm`).
#[allow(clippy::too_many_arguments)]
pub fn confirm(
    conn: &mut DbConnection,
    links: &Links,
    token: &str,
    expected_version: i64,
    request_id: Option<String>,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Appointment, SelfServiceError> {
    in_transaction(conn, |conn| {
        let (opened, v, _) = for_action(conn, links, token, expected_version, request_id, clinic_zone, now)?;
        Ok(crate::appointments::confirm_by_patient(
            conn,
            &opened.actor,
            v.appointment.id,
            now,
        )?)
    })
}

/// The patient moves the visit to one of the offered times: the normal reschedule, with its
/// update email.
#[allow(clippy::too_many_arguments)]
pub fn reschedule(
    conn: &mut DbConnection,
    links: &Links,
    token: &str,
    expected_version: i64,
    provider: ProviderId,
    start: DateTime<Utc>,
    request_id: Option<String>,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Appointment, SelfServiceError> {
    let moved = in_transaction(conn, |conn| {
        let (opened, v, settings) = for_action(conn, links, token, expected_version, request_id, clinic_zone, now)?;
        let offered = reschedule_slots(conn, &links.times, &v.appointment, &settings, clinic_zone, now)?;
        if !offered.contains(provider, start) {
            return Err(SelfServiceError::SlotGone);
        }
        let to = (provider != v.appointment.provider_id).then_some(provider);
        // The form's version is already locked (`for_action`).
        Ok(crate::appointments::reschedule_to(
            conn,
            &opened.actor,
            v.appointment.id,
            None,
            to,
            start,
            clinic_zone,
            now,
        )?)
    });
    slot_race_is_gone(moved)
}

/// A slot taken between the page and the post (or by a concurrent booking) is "gone".
fn slot_race_is_gone<T>(result: Result<T, SelfServiceError>) -> Result<T, SelfServiceError> {
    match result {
        Err(SelfServiceError::Flow(FlowError::Scheduling(clinic_scheduling::SchedulingError::Unbookable(_))))
        | Err(SelfServiceError::Flow(FlowError::Scheduling(clinic_scheduling::SchedulingError::Conflict {
            code: "slot_taken",
            ..
        }))) => Err(SelfServiceError::SlotGone),
        other => other,
    }
}

/// The patient cancels the visit (with an optional reason), with the cancellation notice.
/// A refill visit cancelled with nothing else booked before its pump's due date puts the
/// pump on the outreach list at once, marked as cancelled by the patient.
#[allow(clippy::too_many_arguments)]
pub fn cancel(
    conn: &mut DbConnection,
    links: &Links,
    token: &str,
    expected_version: i64,
    reason: Option<String>,
    request_id: Option<String>,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Appointment, SelfServiceError> {
    in_transaction(conn, |conn| {
        let (opened, v, settings) = for_action(conn, links, token, expected_version, request_id, clinic_zone, now)?;
        if !settings.patients_may_cancel {
            return Err(SelfServiceError::NotAllowed);
        }
        let reason = Some(match reason {
            Some(r) => format!("cancelled by the patient: {r}"),
            None => "cancelled by the patient".to_owned(),
        });
        let a = crate::appointments::set_status(
            conn,
            &opened.actor,
            v.appointment.id,
            AppointmentStatus::Cancelled,
            reason,
            now,
        )?;
        if a.type_code == REFILL {
            let mut entries = Vec::new();
            for pump in registry::active_for_patient_unaudited(conn, a.patient_id)? {
                if worklist::refill_booked_for(conn, &pump, clinic_zone, now)?.is_none() {
                    entries.push(NewEntry {
                        dedupe_key: format!("cancelled_by_patient:{}:{}", a.id, pump.id),
                        patient_id: a.patient_id.to_string(),
                        reason: Reason::CancelledByPatient,
                        subject_type: "pump".into(),
                        subject_id: pump.id.clone(),
                        refers_to: clinic_reminders::planner::refill_refers_to(clinic_zone, pump.forecast.due_date),
                    });
                }
            }
            outreach::raise(conn, entries, now)?;
        }
        Ok(a)
    })
}

/// Opens a refill link: the pump, unless its episode or due date is over.
fn open_refill(
    conn: &mut DbConnection,
    links: &Links,
    token: &str,
    request_id: Option<String>,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<(Opened, Pump), SelfServiceError> {
    let mut found = None;
    let (opened, subject) = open(
        conn,
        links,
        token,
        |conn, subject| {
            let LinkSubject::Refill { pump, .. } = subject else {
                return Ok(None);
            };
            found = match registry::load_unaudited(conn, &pump.to_string()) {
                Ok(p) => Some(p),
                Err(clinic_pumps::PumpError::NotFound(_)) => None,
                Err(e) => return Err(e.into()),
            };
            Ok(found.as_ref().map(|p| p.patient_id))
        },
        request_id,
    )?;
    let pump = found.ok_or(SelfServiceError::Refused(Refused::Invalid))?;
    if pump.status != "active" || refill_subject(conn, &pump)? != subject {
        return Err(SelfServiceError::Refused(Refused::Done));
    }
    if now >= worklist::end_of_day(clinic_zone, pump.forecast.due_date) {
        return Err(SelfServiceError::Refused(Refused::Expired));
    }
    Ok((opened, pump))
}

/// The refill booking page: the booked visit if there is one, else the suggested times (the
/// refill-slots window, never after the due date, never in the past). Audited.
pub fn refill(
    conn: &mut DbConnection,
    audit: &AuditWriter,
    links: &Links,
    token: &str,
    request_id: Option<String>,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Refill, SelfServiceError> {
    let (opened, pump) = open_refill(conn, links, token, request_id, clinic_zone, now)?;
    let settings = links.settings.for_page(conn)?;
    if !settings.refill_booking {
        return Err(SelfServiceError::PhoneOnly(PhoneOnly::NotOffered));
    }
    let booked = worklist::refill_booked_for(conn, &pump, clinic_zone, now)?;
    let slots = match booked {
        Some(_) => Vec::new(),
        None => refill_slots(conn, &links.times, &pump, clinic_zone, now)?.spread(clinic_zone),
    };
    audit.record(vec![read_event(&opened.actor, "pump.read", opened.patient.id, now)])?;
    Ok(Refill {
        due_date: pump.forecast.due_date,
        patient_zone: opened.patient.time_zone,
        slots,
        booked: booked.map(|a| {
            let token = links.sign(LinkSubject::Appointment(a.id), opened.generation);
            (a, token)
        }),
    })
}

/// The refill-slots window for a patient: from now (not before 15 days ahead of the due
/// date, as staff see it) to the end of the due date.
fn refill_slots(
    conn: &mut DbConnection,
    times: &TimesCache,
    pump: &Pump,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<Offer, FlowError> {
    let due = pump.forecast.due_date;
    let from = worklist::end_of_day(clinic_zone, due - Duration::days(15)).max(now);
    let until = worklist::end_of_day(clinic_zone, due);
    offered_slots(conn, times, REFILL, None, from, until, clinic_zone, now)
}

/// The patient books one of the offered refill times: a `refill` visit through the shared
/// booking path (confirmation email, reminders; the refill reminders stop because a visit
/// is booked). The pump's row lock makes two tabs posting at once book one visit. Returns the
/// visit and the token of its manage link.
#[allow(clippy::too_many_arguments)]
pub fn book_refill(
    conn: &mut DbConnection,
    links: &Links,
    token: &str,
    provider: ProviderId,
    start: DateTime<Utc>,
    request_id: Option<String>,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<(Appointment, String), SelfServiceError> {
    let booked = in_transaction(conn, |conn| {
        let (opened, pump) = open_refill(conn, links, token, request_id, clinic_zone, now)?;
        if !policy::load(conn)?.settings.refill_booking {
            return Err(SelfServiceError::PhoneOnly(PhoneOnly::NotOffered));
        }
        registry::lock(conn, &pump.id)?;
        if worklist::refill_booked_for(conn, &pump, clinic_zone, now)?.is_some() {
            return Err(SelfServiceError::AlreadyBooked);
        }
        let offered = refill_slots(conn, &links.times, &pump, clinic_zone, now)?;
        if !offered.contains(provider, start) {
            return Err(SelfServiceError::SlotGone);
        }
        let new = NewAppointment {
            patient_id: opened.patient.id,
            provider_id: provider,
            type_code: REFILL.to_owned(),
            start,
            note: Some("booked by the patient from their link".to_owned()),
        };
        match crate::appointments::book(conn, &opened.actor, new, None, clinic_zone, now)? {
            Booking::Created(a) | Booking::Replayed(a) => {
                let token = links.sign(LinkSubject::Appointment(a.id), opened.generation);
                Ok((a, token))
            }
        }
    });
    slot_race_is_gone(booked)
}

/// A self-service link as staff tools get it (to send by text message, say), and until when
/// it works as the visit or refill is now.
#[derive(Debug, Clone)]
pub struct IssuedLink {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// The manage link of visit `id`, as its emails carry it. Audited as `appointment.link_issued`
/// (whoever holds the link can change the visit).
pub fn visit_link(
    conn: &mut DbConnection,
    audit: &AuditWriter,
    links: &PatientLinks,
    actor: &Actor,
    id: clinic_domain::ids::AppointmentId,
    now: DateTime<Utc>,
) -> Result<IssuedLink, FlowError> {
    let a = appointments::load(conn, id)?;
    let generation = patient_links::generation(conn, a.patient_id)?;
    audit.record(vec![read_event(actor, "appointment.link_issued", a.patient_id, now)])?;
    let zone = a.provider_zone;
    Ok(IssuedLink {
        token: links.sign(LinkSubject::Appointment(a.id), generation),
        expires_at: worklist::end_of_day(zone, zone.local_date(a.start)),
    })
}

/// The refill booking link of pump `pump_id` for its current episode, as its refill
/// reminders carry it. Audited as `pump.link_issued`.
pub fn refill_link(
    conn: &mut DbConnection,
    audit: &AuditWriter,
    links: &PatientLinks,
    actor: &Actor,
    pump_id: &str,
    clinic_zone: ClinicZone,
    now: DateTime<Utc>,
) -> Result<IssuedLink, FlowError> {
    let pump = registry::load_unaudited(conn, pump_id)?;
    let generation = patient_links::generation(conn, pump.patient_id)?;
    let subject = refill_subject(conn, &pump)?;
    audit.record(vec![read_event(actor, "pump.link_issued", pump.patient_id, now)])?;
    Ok(IssuedLink {
        token: links.sign(subject, generation),
        expires_at: worklist::end_of_day(clinic_zone, pump.forecast.due_date),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn provider() -> Provider {
        Provider {
            id: ProviderId::new(),
            name: "Nurse".into(),
            role: "nurse".into(),
            active: true,
            time_zone: ClinicZone::default(),
            hours: Vec::new(),
            version: 1,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn times_are_spread_over_each_day_and_days_are_capped() {
        let zone = ClinicZone::parse("America/Chicago").expect("zone");
        // 20 days of 36 quarter hours each, 09:00 to 18:00 Chicago time.
        let mut offer = Offer {
            providers: vec![provider()],
            slots: Vec::new(),
        };
        for day in 0..20 {
            for q in 0..36 {
                let start = Utc.with_ymd_and_hms(2027, 1, 4, 15, 0, 0).single().expect("instant")
                    + Duration::days(day)
                    + Duration::minutes(15 * q);
                let local = start.with_timezone(&zone.tz()).naive_local();
                offer.slots.push((
                    0,
                    Slot {
                        start,
                        end: start + Duration::minutes(30),
                        local,
                    },
                ));
            }
        }
        let kept = offer.spread(zone);
        assert_eq!(kept.len(), MAX_DAYS * TIMES_PER_DAY);
        let first_day: Vec<_> = kept.iter().take(TIMES_PER_DAY).map(|(_, s)| s.start).collect();
        assert_eq!(
            first_day.first(),
            Some(&offer.slots[0].1.start),
            "the day's first time is kept"
        );
        assert_eq!(first_day.last(), Some(&offer.slots[35].1.start), "and its last");
        assert!(first_day.windows(2).all(|w| w[0] < w[1]));
        let days: std::collections::BTreeSet<_> = kept.iter().map(|(_, s)| zone.local_date(s.start)).collect();
        assert_eq!(days.len(), MAX_DAYS);
        // Every time stays on offer for a post, whatever a page shows.
        assert!(offer.contains(offer.providers[0].id, offer.slots[1].1.start));
        assert!(!offer.contains(ProviderId::new(), offer.slots[1].1.start));
        // A day with few times keeps them all.
        offer.slots.truncate(3);
        assert_eq!(offer.spread(zone).len(), 3);
    }
}
