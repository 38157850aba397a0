//! After a stream ends with `[DONE]`, its upstream connection goes back to
//! the pool — even when the provider ends the body a little after `[DONE]` —
//! so the next stream reuses it instead of opening a new one.

use crate::support;

use support::*;
use switchboard_testkit::FakeProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_one_after_another_share_one_connection() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    for _ in 0..5 {
        // The body's end comes 100 ms after [DONE]; the client is answered
        // at [DONE] and the daemon reads the rest on its own.
        let response = chat(&daemon, "fake/lateend-100", true).await;
        let (events, _) = SseReader::new(response).collect().await;
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    assert_eq!(fake.request_count(), 5);
    // The last body's end is still on its way: wait for the connection to
    // be idle in the pool again before counting.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        fake.connections_accepted(),
        1,
        "every stream after the first reused the pooled connection"
    );
}
