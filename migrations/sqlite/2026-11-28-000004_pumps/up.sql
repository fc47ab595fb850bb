-- Pumps: catalogues (models, drugs), forecast policy, pumps with their stored forecast,
-- fills and dose programmes. Volumes, doses and concentrations are exact decimals as text.
CREATE TABLE pump_models (
    code TEXT PRIMARY KEY NOT NULL,
    manufacturer TEXT NOT NULL,
    model TEXT NOT NULL,
    reservoir_ml TEXT NOT NULL,
    default_alarm_ml TEXT NOT NULL,
    service_life_months BIGINT NOT NULL,
    source TEXT NOT NULL,
    version BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE drugs (
    code TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    -- Mass unit of doses and concentrations: mg or mcg (per mL).
    unit TEXT NOT NULL,
    stability_undiluted_days BIGINT,
    stability_diluted_days BIGINT,
    stability_first_fill_days BIGINT,
    source TEXT NOT NULL,
    version BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE forecast_policy (
    id TEXT PRIMARY KEY NOT NULL,
    margin_days BIGINT NOT NULL,
    over_infusion_factor TEXT,
    version BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE pumps (
    id TEXT PRIMARY KEY NOT NULL,
    patient_id TEXT NOT NULL REFERENCES patients (id),
    model_code TEXT NOT NULL REFERENCES pump_models (code),
    serial_number TEXT NOT NULL UNIQUE,
    implanted_on TEXT NOT NULL,
    reservoir_ml TEXT NOT NULL,
    alarm_ml TEXT NOT NULL,
    replacement_indicator_on TEXT,
    replacement_deadline TEXT NOT NULL,
    status TEXT NOT NULL,
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    -- The stored forecast, rewritten in the transaction of every change that affects it.
    due_date TEXT NOT NULL,
    due_binding TEXT NOT NULL,
    alarm_at TIMESTAMP,
    forecast TEXT NOT NULL,
    forecast_at TIMESTAMP NOT NULL
);
CREATE INDEX pumps_by_due_date ON pumps (status, due_date, id);
CREATE INDEX pumps_by_patient ON pumps (patient_id);

CREATE TABLE pump_fills (
    id TEXT PRIMARY KEY NOT NULL,
    pump_id TEXT NOT NULL REFERENCES pumps (id),
    filled_at TIMESTAMP NOT NULL,
    drug_code TEXT NOT NULL REFERENCES drugs (code),
    concentration TEXT NOT NULL,
    concentration_unit TEXT NOT NULL,
    diluted BOOLEAN NOT NULL,
    volume_ml TEXT NOT NULL,
    residual_ml TEXT NOT NULL,
    prime_ml TEXT NOT NULL,
    first_fill BOOLEAN NOT NULL,
    stability_days BIGINT NOT NULL,
    clinician TEXT NOT NULL,
    expected_residual_ml TEXT,
    discrepancy BOOLEAN NOT NULL,
    recorded_by TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX pump_fills_by_pump ON pump_fills (pump_id, filled_at);

CREATE TABLE pump_programs (
    id TEXT PRIMARY KEY NOT NULL,
    pump_id TEXT NOT NULL REFERENCES pumps (id),
    effective_at TIMESTAMP NOT NULL,
    -- continuous: daily_dose; flex: steps as "HH:MM=rate;HH:MM=rate".
    kind TEXT NOT NULL,
    daily_dose TEXT,
    steps TEXT,
    bolus_dose TEXT NOT NULL,
    bolus_max_per_day BIGINT NOT NULL,
    recorded_by TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX pump_programs_by_pump ON pump_programs (pump_id, effective_at);
