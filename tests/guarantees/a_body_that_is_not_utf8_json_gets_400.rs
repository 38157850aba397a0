//! A request body must be UTF-8 JSON wherever its bad bytes are: in a field
//! the daemon reads (`model`, `messages`) or one it only passes on
//! (`user`), the answer is 400 in OpenAI's shape, nothing goes upstream,
//! and the daemon keeps serving.

use crate::support;

use support::*;
use switchboard_testkit::FakeProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_in_any_field_gets_400() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    let cases: [(&str, &[u8]); 3] = [
        (
            "a field passed through",
            b"{\"model\":\"fake/instant\",\"messages\":[],\"user\":\"\xff\xfe\"}",
        ),
        (
            "messages",
            b"{\"model\":\"fake/instant\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\"}]}",
        ),
        ("model", b"{\"model\":\"fake/\xff\",\"messages\":[]}"),
    ];
    for (what, payload) in cases {
        let response = daemon
            .client()
            .post(daemon.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(payload.to_vec())
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), 400, "{what}");
        let id = session_id(&response);
        assert_eq!(error_code(response).await, "invalid_request", "{what}");
        assert_eq!(
            final_phases(&daemon, &id).await,
            ["RECEIVED", "REJECTED"],
            "{what}"
        );
    }
    assert_eq!(fake.request_count(), 0, "nothing reached the provider");
    assert_eq!(chat(&daemon, "fake/instant", false).await.status(), 200);
}
