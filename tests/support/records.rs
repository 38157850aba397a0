//! Helpers for the history tests: reading the daemon's history file
//! directly, and waiting for sessions to reach it.
