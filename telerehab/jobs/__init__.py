"""The scheduler process: APScheduler wiring; each job calls one service function."""
