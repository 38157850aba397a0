//! Helpers for the metrics, usage and events tests.
