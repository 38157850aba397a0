//! The daemon does not use HTTP proxies. When `HTTPS_PROXY` (or another
//! proxy variable other clients honour) is set, it warns once at start,
//! naming the variable and never its value (a proxy URL can hold a
//! password), and serves as usual, calling the provider directly.

use crate::support;

use std::time::Duration;

use support::*;
use switchboard_testkit::FakeProvider;

/// Far above the time the warning takes to reach the log.
const SOON: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_proxy_variable_is_reported_at_start_without_its_value() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake)
        .env("HTTPS_PROXY", "http://someone:hunter2@proxy.invalid:3128")
        .start()
        .await;
    switchboard_testkit::eventually("the proxy warning in the log", SOON, || {
        let logs = daemon.logs();
        async move { logs.contains("does not use HTTP proxies").then_some(()) }
    })
    .await;
    let logs = daemon.logs();
    assert!(
        logs.contains("HTTPS_PROXY"),
        "the variable is named:\n{logs}"
    );
    assert!(
        !logs.contains("hunter2"),
        "the value is never logged:\n{logs}"
    );
    let answer = chat(&daemon, "fake/instant", false).await;
    assert_eq!(answer.status(), 200, "the provider is called directly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_proxy_warning_without_a_proxy_variable() {
    let fake = FakeProvider::start().await;
    let daemon = daemon(&fake).start().await;
    let answer = chat(&daemon, "fake/instant", false).await;
    assert_eq!(answer.status(), 200);
    let logs = daemon.logs();
    let inherited = [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    if !inherited {
        assert!(!logs.contains("does not use HTTP proxies"), "{logs}");
    }
}
