//! Histogram bucket boundaries, and where each set comes from.

use prometheus_client::metrics::histogram::Histogram;

/// `gen_ai.client.operation.duration`: the boundaries the OpenTelemetry GenAI
/// semantic conventions recommend (10 ms doubling to 82 s).
const OPERATION_DURATION: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// `gen_ai.client.token.usage`: the conventions' boundaries (powers of 4).
const TOKEN_USAGE: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// `gen_ai.server.time_to_first_token`: the conventions' boundaries.
const TIME_TO_FIRST_TOKEN: [f64; 16] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Waiting for capacity: from a millisecond (a slot freed at once) to the
/// longest deadline a provider is usually given (minutes).
const QUEUE_WAIT: [f64; 12] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

/// What the daemon adds to a request: tens of microseconds when all is well
/// (the benchmark's figure), milliseconds when the machine is loaded.
const OVERHEAD: [f64; 14] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.5,
];

/// One history batch: a millisecond or two normally; seconds when the disk
/// stalls or another process holds the file's lock.
const HISTORY_WRITE: [f64; 12] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

pub(super) fn operation_duration() -> Histogram {
    Histogram::new(OPERATION_DURATION)
}

pub(super) fn token_usage() -> Histogram {
    Histogram::new(TOKEN_USAGE)
}

pub(super) fn time_to_first_token() -> Histogram {
    Histogram::new(TIME_TO_FIRST_TOKEN)
}

pub(super) fn queue_wait() -> Histogram {
    Histogram::new(QUEUE_WAIT)
}

pub(super) fn overhead() -> Histogram {
    Histogram::new(OVERHEAD)
}

pub(super) fn history_write() -> Histogram {
    Histogram::new(HISTORY_WRITE)
}
