"""Billing: the RTM code, modifier and date-of-service rules (the workbench comes later)."""
