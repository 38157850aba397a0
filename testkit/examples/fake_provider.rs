//! The fake provider on its own, for profiling the daemon by hand:
//! `cargo run --release -p switchboard-testkit --example fake_provider`
//! prints its base URL and serves instant answers until killed.

use switchboard_testkit::FakeProvider;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let fake = FakeProvider::start().await;
    // Kept requests would grow without bound over a long profile.
    fake.set_recording(false);
    println!("{}", fake.base_url());
    std::future::pending::<()>().await;
}
