//! `[server] listen_tcp` serves only loopback: callers are identified by
//! the kernel's socket table, which knows only this machine's users, so an
//! address other machines could reach (`0.0.0.0`, `[::]`, a LAN address)
//! stops the daemon at start with a message naming the key.

use crate::support;

use std::time::Duration;

use support::daemon;
use support::scrape::free_port;
use switchboard_testkit::FakeProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_listen_tcp_stops_the_daemon_at_start() {
    let fake = FakeProvider::start().await;
    for addr in [
        format!("0.0.0.0:{}", free_port()),
        format!("[::]:{}", free_port()),
        format!("192.168.1.10:{}", free_port()),
    ] {
        let (status, logs) = daemon(&fake)
            .toml(&format!("[server]\nlisten_tcp = \"{addr}\""))
            .start_expect_failure(Duration::from_secs(20))
            .await;
        assert!(
            !status.success(),
            "listen_tcp = {addr} must not start: {status}\n{logs}"
        );
        assert!(
            logs.contains("server.listen_tcp") && logs.contains("loopback"),
            "the refusal names server.listen_tcp and says why ({addr}):\n{logs}"
        );
    }
}
