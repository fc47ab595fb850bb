//! `clinic-pumps`: implanted pumps and their refill forecast.
//!
//! Will own: the pump-model and drug catalogues, each patient's pumps, fills, dose
//! programmes, the stored forecast (recomputed in the same transaction as every change that
//! affects it, by the pure forecast in `clinic-domain`), the refill worklist and suggested
//! refill slots (read through `clinic-scheduling`).
