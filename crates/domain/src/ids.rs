//! Identifiers: UUID v7 (time-ordered, so they also order lists and cursors), stored as text.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::FieldError;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = FieldError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s)
                    .map(Self)
                    .map_err(|_| FieldError::new("id", "invalid_id", "not a valid identifier (UUID)"))
            }
        }
    };
}

id_type!(
    /// A patient record.
    PatientId
);
id_type!(
    /// An API token (its public id, never the secret).
    TokenId
);
id_type!(
    /// A staff member's account.
    UserId
);
id_type!(
    /// A patient-education article.
    ArticleId
);
id_type!(
    /// A condition the clinic treats.
    ConditionId
);
id_type!(
    /// A recorded candidacy screening.
    ScreeningId
);
id_type!(
    /// A provider (clinician) whose calendar is booked.
    ProviderId
);
id_type!(
    /// An appointment.
    AppointmentId
);
id_type!(
    /// A provider's time off.
    TimeOffId
);
id_type!(
    /// A public appointment request.
    AppointmentRequestId
);
id_type!(
    /// A calendar feed token (its public id).
    FeedTokenId
);
