//! What every handler can reach: the pool, clinic facts, the clock, metrics, limits.

use std::sync::Arc;

use actix_web::web;
use chrono::{DateTime, Utc};
use clinic_domain::contact::PhoneRegion;
use clinic_domain::time::{ClinicZone, Clock};
use clinic_store::{pool, DbConnection, Pool};

use crate::metrics::Metrics;
use crate::problem::ApiError;
use crate::token_cache::TokenCache;

/// Facts about the clinic from configuration.
#[derive(Debug, Clone)]
pub struct ClinicInfo {
    pub name: String,
    pub phone: String,
    pub time_zone: ClinicZone,
    /// Region for phone numbers written without a country code.
    pub phone_region: PhoneRegion,
    /// Where the clinic is, for calendar invitations (the name when not configured).
    pub address: Option<String>,
}

/// Request limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub clinic: ClinicInfo,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    /// Group-commit writer for the audit events of reads.
    pub audit: clinic_patients::audit::AuditWriter,
    /// Recent availability answers (cleared by every calendar change in this process).
    pub availability: crate::availability_cache::AvailabilityCache,
    /// Published articles for the public pages and API.
    pub content: crate::content_cache::ContentCache,
    /// Per-address limit for the public (tokenless) write routes.
    pub public_limiter: std::sync::Arc<crate::rate_limit::PublicLimiter>,
    /// Recently verified tokens (see [`TokenCache`] for the revocation delay).
    pub tokens: TokenCache,
    /// Renders outbox rows and previews; signs and checks "stop emailing me" links.
    pub composer: Arc<clinic_reminders::compose::Composer>,
}

impl AppState {
    /// Now, at the precision the database keeps.
    pub fn now(&self) -> DateTime<Utc> {
        clinic_store::time::from_db(clinic_store::time::to_db(self.clock.now()))
    }

    /// Runs blocking database work on actix's blocking pool with a pooled connection.
    pub async fn db<T, E, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Into<ApiError> + Send + 'static,
    {
        let pool = self.pool.clone();
        web::block(move || {
            let mut conn = pool::get(&pool).map_err(ApiError::from)?;
            f(&mut conn).map_err(Into::into)
        })
        .await
        .map_err(|_| ApiError::Internal("blocking task was cancelled".into()))?
    }
}
