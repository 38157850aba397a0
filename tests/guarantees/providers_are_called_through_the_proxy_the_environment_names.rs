//! Providers are called through the proxy that `HTTP_PROXY`, `HTTPS_PROXY`
//! or `ALL_PROXY` names, as reqwest, curl and the SDKs call them, except
//! the hosts `NO_PROXY` lists; a plain `http://` provider by a whole-URL
//! request to the proxy, an `https://` one through a `CONNECT` tunnel in
//! which TLS starts end to end. The proxy's credentials reach only the
//! proxy, never the log; a proxy the daemon cannot use (`socks5://`) stops
//! it at start naming the endpoint, rather than being bypassed.

use crate::support;

use std::time::Duration;

use support::*;
use switchboard_testkit::{FakeProvider, FakeProxy};

/// The proxy's credentials, and their `Proxy-Authorization` value.
const CREDENTIALS: &str = "someone:hunter2";
const BASIC: &str = "Basic c29tZW9uZTpodW50ZXIy";

/// The proxy URL the daemon is given, with credentials.
fn with_credentials(proxy: &FakeProxy) -> String {
    proxy
        .url()
        .replace("http://", &format!("http://{CREDENTIALS}@"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_provider_is_called_through_http_proxy_with_its_credentials() {
    let (fake, proxy) = (FakeProvider::start().await, FakeProxy::start().await);
    let daemon = daemon(&fake)
        .env("HTTP_PROXY", with_credentials(&proxy))
        .start()
        .await;
    let answer = chat(&daemon, "fake/instant", false).await;
    assert_eq!(answer.status(), 200, "answered through the proxy");
    let seen = proxy.seen();
    let target = format!("POST {}/chat/completions HTTP/1.1", fake.base_url());
    assert!(
        seen.iter().any(|s| s.head.starts_with(&target)),
        "the proxy was asked for the whole URL ({target}): {seen:?}"
    );
    let head = seen[0].head.to_ascii_lowercase();
    assert!(
        head.contains(&format!(
            "proxy-authorization: {}",
            BASIC.to_ascii_lowercase()
        )),
        "with the proxy's credentials: {head}"
    );
    let logs = daemon.logs();
    assert!(
        logs.contains("calls go through a proxy") && logs.contains(&proxy.url()),
        "the start log says which proxy calls go through:\n{logs}"
    );
    assert!(
        !logs.contains("hunter2"),
        "the password is never logged:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_proxy_hosts_are_called_directly() {
    let (fake, proxy) = (FakeProvider::start().await, FakeProxy::start().await);
    let daemon = daemon(&fake)
        .env("HTTP_PROXY", proxy.url())
        .env("NO_PROXY", "localhost,127.0.0.1")
        .start()
        .await;
    let answer = chat(&daemon, "fake/instant", false).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(fake.request_count(), 1, "the provider was called");
    assert!(
        proxy.seen().is_empty(),
        "not through the proxy: {:?}",
        proxy.seen()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_provider_is_reached_through_a_connect_tunnel() {
    let (fake, proxy) = (FakeProvider::start().await, FakeProxy::start().await);
    // The tunnel leads to the fake, which speaks plain HTTP: the TLS
    // handshake the daemon starts in it fails, and the call with it.
    let tls = format!("https://{}/v1", fake.addr());
    let daemon = daemon(&fake)
        .provider("tls", &tls)
        .provider_toml("tls", "max_retries = 0")
        .env("TLS_API_KEY", "sk-tls-test")
        .env("HTTPS_PROXY", with_credentials(&proxy))
        .start()
        .await;
    let answer = chat(&daemon, "tls/instant", false).await;
    assert_eq!(answer.status(), 502, "no TLS behind the tunnel");
    let seen = proxy.seen();
    let connect = format!("CONNECT {} HTTP/1.1", fake.addr());
    let tunnel = seen
        .iter()
        .find(|s| s.head.starts_with(&connect))
        .unwrap_or_else(|| {
            panic!(
                "the proxy was asked for a tunnel ({connect}): {seen:?}\n{}",
                daemon.logs()
            )
        });
    assert!(
        tunnel
            .head
            .to_ascii_lowercase()
            .contains(&BASIC.to_ascii_lowercase()),
        "with the proxy's credentials: {}",
        tunnel.head
    );
    assert_eq!(
        tunnel.tunnelled,
        Some(0x16),
        "a TLS handshake is the first thing through the tunnel"
    );
    let plain = chat(&daemon, "fake/instant", false).await;
    assert_eq!(
        plain.status(),
        200,
        "HTTPS_PROXY leaves http:// providers direct"
    );
    let logs = daemon.logs();
    assert!(
        !logs.contains("hunter2"),
        "the password is never logged:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_it_cannot_use_stops_the_daemon_naming_the_endpoint() {
    let fake = FakeProvider::start().await;
    let (status, output) = daemon(&fake)
        .env("ALL_PROXY", "socks5://someone:hunter2@127.0.0.1:1080")
        .start_expect_failure(Duration::from_secs(10))
        .await;
    assert!(!status.success());
    assert!(
        output.contains("socks5:// proxy") && output.contains(&fake.addr().to_string()),
        "names the proxy's kind and the endpoint:\n{output}"
    );
    assert!(!output.contains("hunter2"), "never the password:\n{output}");
}
