//! Fuzz target `settings`: the settings loader (`Settings::from_toml`, what
//! `switchboard serve --config PATH` runs on the file's text) on arbitrary
//! text, then what the daemon derives from accepted settings before it
//! serves: the actors' part, worker count, socket and history paths, prices,
//! rate limits, provider health and the routes.
//!
//! Checked: no panic; a refused file gets an error (any error: its wording
//! is tested in the daemon's tests).

#![no_main]

use std::collections::HashMap;
use std::sync::Arc;

use actix::Addr;
use actix::dev::channel::channel;
use libfuzzer_sys::fuzz_target;
use switchboard::settings::Settings;
use switchboard_actors::provider::Provider;
use switchboard_actors::settings::Prices;
use switchboard_actors::supervisor::Routes;
use switchboard_actors::supervisor::limits::Limits;
use switchboard_actors::wire::Wire;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let Ok(settings) = Settings::from_toml(text, "the fuzz input") else {
        return;
    };
    let _ = (
        settings.server.worker_count(),
        settings.server.socket_path(),
        settings.history.resolved_path(),
    );
    let actors = settings.actors();
    let _ = Prices::of(&actors);
    let providers = actors
        .providers
        .iter()
        .map(|(name, config)| {
            // An address nobody reads: building routes never sends to it.
            let call = Addr::<Provider>::new(channel(1).0).recipient();
            (name.clone(), (call, Provider::health_for(config)))
        })
        .collect::<HashMap<_, _>>();
    let routes = Routes::new(&actors, providers, Arc::new(Limits::new(&actors)));
    for alias in actors.aliases.keys() {
        for wire in [
            Wire::Chat,
            Wire::Messages,
            Wire::CountTokens,
            Wire::Embeddings,
        ] {
            let _ = routes.resolve(alias, wire);
        }
    }
});
