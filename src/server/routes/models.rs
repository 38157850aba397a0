//! `GET /v1/models`: the configured `<provider>/<model>` names and the
//! aliases (with their fallback chains) in OpenAI's list shape. Built once at start: settings do not change while running.

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::json;

use crate::server::Ctx;
use crate::server::http::{Answer, json_bytes};
use crate::settings::Settings;

/// The list, encoded once.
pub fn catalogue(settings: &Settings) -> Bytes {
    let data: Vec<_> = settings
        .providers
        .iter()
        .flat_map(|(provider, config)| {
            config.models.iter().map(move |model| {
                json!({
                    "id": format!("{provider}/{}", model.settings().name),
                    "object": "model",
                    "created": 0,
                    "owned_by": provider,
                })
            })
        })
        .chain(settings.aliases.iter().map(|(alias, targets)| {
            json!({
                "id": alias,
                "object": "model",
                "created": 0,
                "owned_by": "switchboard",
                "fallbacks": targets,
            })
        }))
        .collect();
    Bytes::from(json!({ "object": "list", "data": data }).to_string())
}

/// The endpoint.
pub fn list(cx: &Ctx) -> Answer {
    let models = cx.app.models.read().map(|m| m.clone());
    json_bytes(
        StatusCode::OK,
        models.unwrap_or_else(|poisoned| poisoned.into_inner().clone()),
    )
}
