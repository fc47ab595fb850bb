//! `clinic-content`: what the clinic publishes and how it screens candidates.
//!
//! Will own: patient-education articles (Markdown rendered to sanitised HTML, drafts,
//! publishing, revisions and restore), the catalogue of conditions treated, and candidacy
//! screening records (answers per criterion, the result and its explanation). The screening
//! rules themselves live in `clinic-domain`. Depends on `domain`, `store` and `patients` only.
