DROP TABLE pump_programs;
DROP TABLE pump_fills;
DROP TABLE pumps;
DROP TABLE forecast_policy;
DROP TABLE drugs;
DROP TABLE pump_models;
