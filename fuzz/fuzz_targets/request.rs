//! Fuzz target `request`: request decoding and routing, as the routes do
//! them, on arbitrary bytes, for each wire (chat completions, messages,
//! count_tokens, embeddings): `ChatRequest::parse`, then
//! `Routes::resolve` of its model against the shipped settings (plus an
//! alias), then `upstream_body` for every target.
//!
//! Checked: no panic; an accepted body has a non-empty model; a refused
//! model name is repeated back at most `MAX_MODEL_SHOWN` bytes long; every
//! target is a configured provider; and when the caller's body is a JSON
//! value, the upstream body is the same value with only `model` replaced.

#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use actix::Addr;
use actix::dev::channel::channel;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use switchboard::settings::Settings;
use switchboard_actors::GatewayError;
use switchboard_actors::provider::Provider;
use switchboard_actors::request::ChatRequest;
use switchboard_actors::settings::ActorSettings;
use switchboard_actors::supervisor::Routes;
use switchboard_actors::supervisor::limits::Limits;
use switchboard_actors::wire::Wire;

/// `sessions.metadata_max_bytes`: smaller than the shipped 4096, so the
/// fuzzer crosses it with short inputs.
const METADATA_MAX: usize = 64;

/// The longest refused model name shown, in bytes: 128 (`MAX_MODEL_SHOWN`)
/// and the three of the `…` that marks a cut.
const MAX_SHOWN_BYTES: usize = 128 + 3;

/// The shipped settings with one more alias, and routes to their providers.
struct World {
    settings: ActorSettings,
    routes: Routes,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    let mut settings = Settings::load(None)
        .expect("the shipped settings load")
        .actors();
    settings.aliases.insert(
        "fuzz".into(),
        vec!["mock/echo".into(), "glm/glm-4.6".into(), "nowhere/x".into()],
    );
    let providers = settings
        .providers
        .iter()
        .map(|(name, config)| {
            // An address nobody reads: resolving never sends to it.
            let call = Addr::<Provider>::new(channel(1).0).recipient();
            (name.clone(), (call, Provider::health_for(config)))
        })
        .collect::<HashMap<_, _>>();
    let limits = Arc::new(Limits::new(&settings));
    let routes = Routes::new(&settings, providers, limits);
    World { settings, routes }
});

/// The routes a body can arrive on: every input is tried on each, so the
/// corpus stays plain request bodies.
const WIRES: [Wire; 4] = [
    Wire::Chat,
    Wire::Messages,
    Wire::CountTokens,
    Wire::Embeddings,
];

fuzz_target!(|input: &[u8]| {
    for wire in WIRES {
        one(wire, input);
    }
});

/// Decodes and routes `input` as it would arrive on `wire`.
fn one(wire: Wire, input: &[u8]) {
    let world = &*WORLD;
    let Ok(request) = ChatRequest::parse(wire, Bytes::copy_from_slice(input), METADATA_MAX) else {
        return;
    };
    assert!(!request.model().is_empty());
    let _ = (
        request.stream(),
        request.metadata(),
        request.messages_json(),
    );
    let caller: Option<Value> = serde_json::from_slice(input).ok();
    match world.routes.resolve(request.model(), wire) {
        Ok(targets) => {
            for target in targets {
                let provider = &*target.route.provider;
                assert!(world.settings.providers.contains_key(provider));
                check_upstream(&request, caller.as_ref(), &target.route.model);
            }
        }
        Err(GatewayError::UnknownModel(shown)) => assert!(shown.len() <= MAX_SHOWN_BYTES),
        // A provider without this route's endpoint (no anthropic_base_url).
        Err(GatewayError::NotServed { .. }) => {}
        Err(other) => panic!("resolve failed with {other:?}"),
    }
    // Whatever the route, the model name itself as an upstream model.
    if let Some((_, model)) = request.provider_and_model() {
        check_upstream(&request, caller.as_ref(), model);
    }
}

/// The upstream body for `model` is the caller's JSON with `model` replaced.
fn check_upstream(request: &ChatRequest, caller: Option<&Value>, model: &str) {
    let upstream = request.upstream_body(model);
    let Some(caller) = caller else {
        return;
    };
    let mut expected = caller.clone();
    expected["model"] = Value::from(model);
    let upstream: Value = serde_json::from_slice(&upstream).expect("the upstream body is JSON");
    assert_eq!(upstream, expected);
}
