//! A provider that does not accept the connection in `connect_timeout_ms`
//! fails the attempt with the connect deadline named: 504 for a plain
//! request, an SSE error event for a stream, TIMEOUT in the timeline.

use crate::support;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use support::*;
use switchboard_testkit::FakeProvider;

/// A loopback listener whose accept queue is already full: the kernel drops
/// further SYNs, so a connect to it hangs until the caller gives up.
fn full_listener() -> (Socket, TcpStream, SocketAddr) {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    listener.bind(&any.into()).expect("bind");
    listener.listen(0).expect("listen");
    let addr = listener
        .local_addr()
        .expect("address")
        .as_socket()
        .expect("ip");
    let filler = TcpStream::connect(addr).expect("the one queued connection");
    (listener, filler, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_never_accepts_hits_the_connect_deadline() {
    let fake = FakeProvider::start().await;
    let (_listener, _filler, addr) = full_listener();
    let daemon = daemon(&fake)
        .provider("closed", &format!("http://{addr}/v1"))
        .env("CLOSED_API_KEY", "x")
        .provider_toml("closed", "connect_timeout_ms = 300\nmax_retries = 0")
        .start()
        .await;

    let started = Instant::now();
    let response = chat(&daemon, "closed/anything", false).await;
    assert_eq!(response.status(), 504);
    let id = session_id(&response);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "timeout", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("connect"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let (_, timeline) = get_json(&daemon, &format!("/admin/sessions/{id}")).await;
    let phases = timeline["phases"].as_array().expect("phases");
    let last = phases.last().expect("a last phase");
    assert_eq!(last["phase"], "TIMEOUT", "{timeline}");
    assert!(
        last["detail"]
            .as_str()
            .is_some_and(|d| d.contains("connect")),
        "{timeline}"
    );

    let response = chat(&daemon, "closed/anything", true).await;
    assert_eq!(response.status(), 200);
    let (events, _) = SseReader::new(response).collect().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event: serde_json::Value = serde_json::from_str(&events[0]).expect("error event");
    assert_eq!(event["error"]["code"], "timeout", "{event}");
    assert!(
        event["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("connect")),
        "{event}"
    );
}
