"""Remote therapeutic monitoring: enrolment, data days, management time, alerts, forecasts."""
