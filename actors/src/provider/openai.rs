//! Calls to any OpenAI-compatible chat-completions endpoint (Kimi, GLM, ...).
//!
//! One [`Client`] per provider (and one more per distinct per-model connect
//! timeout) keeps keep-alive connections: the daemon's own HTTP/1.1 pool
//! for `http://` endpoints, hyper-util's for `https://` (HTTP/2 where the
//! provider negotiates it) and for HTTP/2 by prior knowledge when
//! configured. A call is a loop of attempts ([`super::exchange`]): a
//! failure that may pass is retried after the provider's hint or a
//! backoff, never past the session's deadline. Each attempt is recorded and
//! reported to the provider's [`Health`]. The API key is read once from the
//! environment variable the settings name, kept as a sensitive header
//! value, and never logged.
//!
//! The same provider may also serve embeddings (`{base_url}/embeddings`)
//! and Anthropic's Messages API (`{anthropic_base_url}/v1/messages`, and
//! its `count_tokens`): the call's [`Wire`] picks the URL and, for
//! Anthropic, the headers — the key as `x-api-key` as well as `Bearer`, and
//! `anthropic-version` unless the caller sent its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use hyper::Uri;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};

use super::client::{Client, endpoint};
use super::exchange::{Failure, Limits, exchange};
use super::proxy::{self, Proxies};
use super::retry::backoff;
use super::{Call, CallFuture, Health, Upstream};
use crate::error::GatewayError;
use crate::phase::AttemptResult;
use crate::settings::{DEFAULT_CONNECT_TIMEOUT_MS, ProviderSettings};
use crate::wire::Wire;

/// The Messages API version sent when the caller names none: the one
/// Anthropic's SDKs send, and the only one the compatible endpoints of Kimi
/// and GLM document.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Anthropic's header for the API key.
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// Anthropic's header for the API version.
const ANTHROPIC_VERSION_HEADER: &str = "anthropic-version";

/// Where the key comes from, and whether it was there.
enum Auth {
    /// No key configured: a local endpoint that needs none.
    None,
    /// `Authorization: Bearer …` and the bare key (Anthropic's
    /// `x-api-key`), both marked sensitive.
    Key {
        /// `Bearer <key>`.
        bearer: HeaderValue,
        /// `<key>`.
        raw: HeaderValue,
    },
    /// A key is configured but its variable is unset: every call fails clearly.
    Missing(String),
}

/// How this provider retries.
#[derive(Clone, Copy)]
struct RetryPolicy {
    /// Retries after the first attempt.
    max_retries: u32,
    /// First backoff.
    base: Duration,
    /// Longest backoff.
    cap: Duration,
}

/// An OpenAI-compatible provider.
pub struct Openai {
    /// Configured name, for errors.
    name: Arc<str>,
    /// Pooled clients by connect timeout; the first is the provider's own.
    clients: Vec<(Duration, Arc<Client>)>,
    /// The endpoint of each wire it serves, by [`Wire::index`] (boxed: four
    /// URLs would make every provider actor's backend enum that much larger).
    urls: Box<[Option<Uri>; Wire::COUNT]>,
    /// The API key, if any.
    auth: Auth,
    /// Largest non-streamed answer and stream event accepted.
    limits: Limits,
    /// Retries.
    retry: RetryPolicy,
    /// Where attempts' outcomes are recorded.
    health: Arc<Health>,
}

impl Openai {
    /// Builds the clients for provider `name`.
    pub fn new(
        name: Arc<str>,
        settings: &ProviderSettings,
        health: Arc<Health>,
    ) -> Result<Self, String> {
        let urls = Box::new(endpoints(&name, settings)?);
        let own = settings
            .connect_timeout_ms
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT_MS);
        let mut timeouts = vec![own];
        for model in settings.models.iter().map(|m| m.settings()) {
            if let Some(ms) = model.connect_timeout_ms
                && !timeouts.contains(&ms)
            {
                timeouts.push(ms);
            }
        }
        let served: Vec<&Uri> = urls.iter().flatten().collect();
        let proxies = Proxies::from_env();
        let clients = timeouts
            .into_iter()
            .map(|ms| {
                let timeout = Duration::from_millis(ms);
                Client::new(
                    &served,
                    timeout,
                    settings.http2_prior_knowledge,
                    proxies.clone(),
                )
                .map(|client| (timeout, Arc::new(client)))
                .map_err(|err| format!("providers.{name}: cannot build its HTTP client: {err}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name,
            clients,
            urls,
            auth: read_key(settings.api_key_env.as_deref()),
            limits: Limits {
                response: settings.max_response_bytes,
                event: settings.max_event_bytes,
            },
            retry: RetryPolicy {
                max_retries: settings.max_retries,
                base: Duration::from_millis(settings.retry_base_ms),
                cap: Duration::from_millis(settings.retry_cap_ms),
            },
            health,
        })
    }

    /// The call, as a future the session runs.
    pub fn call(&self, call: Call) -> CallFuture {
        let health = self.health.clone();
        let provider = self.name.clone();
        let Some(url) = self.urls[call.wire.index()].clone() else {
            let error = GatewayError::NotServed {
                provider: provider.to_string(),
                wire: call.wire,
            };
            return CallFuture(async move { Err(error) }.boxed());
        };
        let auth = match &self.auth {
            Auth::None => None,
            Auth::Key { bearer, raw } => Some((bearer.clone(), raw.clone())),
            Auth::Missing(var) => {
                let error = GatewayError::MissingApiKey {
                    provider: provider.to_string(),
                    var: var.clone(),
                };
                return CallFuture(async move { Err(error) }.boxed());
            }
        };
        let client = self
            .clients
            .iter()
            .find(|(timeout, _)| *timeout == call.connect_timeout)
            .unwrap_or(&self.clients[0])
            .1
            .clone();
        let headers = headers(&call, auth);
        let (retry, limits) = (self.retry, self.limits);
        let attempts = attempts(
            call,
            (client, provider),
            (url, headers),
            retry,
            limits,
            health,
        );
        CallFuture(attempts.boxed())
    }
}

/// The headers of `call`'s every attempt: the key (as `Bearer`, and for
/// Anthropic also as `x-api-key`), what the answer should be, Anthropic's
/// version unless the caller sent one, and the caller's forwarded headers.
fn headers(
    call: &Call,
    auth: Option<(HeaderValue, HeaderValue)>,
) -> Vec<(HeaderName, HeaderValue)> {
    let anthropic = call.wire.is_anthropic();
    let accept = match call.stream {
        true => "text/event-stream",
        false => "application/json",
    };
    let mut headers = vec![
        (CONTENT_TYPE, HeaderValue::from_static("application/json")),
        (ACCEPT, HeaderValue::from_static(accept)),
    ];
    if let Some((bearer, raw)) = auth {
        headers.push((AUTHORIZATION, bearer));
        if anthropic {
            headers.push((X_API_KEY, raw));
        }
    }
    let versioned = call
        .forwarded
        .iter()
        .any(|(name, _)| name == ANTHROPIC_VERSION_HEADER);
    if anthropic && !versioned {
        let version = HeaderValue::from_static(ANTHROPIC_VERSION);
        headers.push((HeaderName::from_static(ANTHROPIC_VERSION_HEADER), version));
    }
    headers.extend(call.forwarded.iter().cloned());
    headers
}

/// Attempts until one succeeds, one fails for good, the retries are spent, or
/// the next wait would pass the session's deadline.
async fn attempts(
    call: Call,
    (client, provider): (Arc<Client>, Arc<str>),
    (url, headers): (Uri, Vec<(HeaderName, HeaderValue)>),
    retry: RetryPolicy,
    limits: Limits,
    health: Arc<Health>,
) -> Result<Upstream, GatewayError> {
    let mut retries = 0;
    loop {
        call.recorder.attempt_started();
        let sent = (&url, headers.as_slice(), call.body.clone());
        let answer = exchange(
            &client,
            sent,
            &provider,
            call.stream,
            limits,
            call.connect_timeout,
        );
        let answer = answer.await;
        let failure = match answer {
            Ok(answer) => {
                if matches!(answer, Upstream::Complete(_)) {
                    call.recorder
                        .attempt_ended(AttemptResult::Succeeded, "HTTP 200");
                }
                health.succeeded();
                return Ok(answer);
            }
            Err(failure) => failure,
        };
        let detail = failure.error.detail();
        call.recorder
            .attempt_ended(AttemptResult::Failed, detail.clone());
        if failure.unhealthy && health.failed(detail, Instant::now()) {
            tracing::warn!(
                provider = &*provider,
                "provider marked unhealthy: fallbacks skip it until its cooldown ends"
            );
        }
        let Some(wait) = next_wait(&failure, retries, retry, call.deadline) else {
            return Err(failure.error);
        };
        retries += 1;
        tokio::time::sleep(wait).await;
    }
}

/// How long to wait before the next attempt, or `None` to stop.
fn next_wait(
    failure: &Failure,
    retries: u32,
    policy: RetryPolicy,
    deadline: Instant,
) -> Option<Duration> {
    if !failure.retry || retries >= policy.max_retries {
        return None;
    }
    let wait = failure
        .wait
        .unwrap_or_else(|| backoff(retries + 1, policy.base, policy.cap));
    (Instant::now() + wait < deadline).then_some(wait)
}

/// The upstream URL of each wire `settings` serves.
/// Each endpoint of provider `name` that is called through a proxy, with
/// the proxy (neither with credentials).
pub fn proxied(name: &str, settings: &ProviderSettings) -> Vec<(String, String)> {
    let (Ok(urls), proxies) = (endpoints(name, settings), Proxies::from_env()) else {
        return Vec::new();
    };
    let mut routes: Vec<(String, String)> = Vec::new();
    for url in urls.iter().flatten() {
        if let Ok(Some(proxy)) = proxies.route(url) {
            let route = (proxy::origin(url), proxy::origin(proxy.uri()));
            if !routes.contains(&route) {
                routes.push(route);
            }
        }
    }
    routes
}

fn endpoints(
    name: &str,
    settings: &ProviderSettings,
) -> Result<[Option<Uri>; Wire::COUNT], String> {
    let join = |key: &str, base: Option<&str>, path: &str| {
        base.map(|base| {
            endpoint(&format!("{}{path}", base.trim_end_matches('/')))
                .map_err(|err| format!("providers.{name}.{key}: {err}"))
        })
        .transpose()
    };
    let base = settings.base_url.as_deref();
    let anthropic = settings.anthropic_base_url.as_deref();
    let chat = join("base_url", base.or(Some("")), "/chat/completions")?;
    Ok([
        chat,
        join("anthropic_base_url", anthropic, "/v1/messages")?,
        join("anthropic_base_url", anthropic, "/v1/messages/count_tokens")?,
        join("base_url", base, "/embeddings")?,
    ])
}

fn read_key(var: Option<&str>) -> Auth {
    let Some(var) = var else { return Auth::None };
    match std::env::var(var) {
        Ok(key) if !key.trim().is_empty() => {
            let bearer = HeaderValue::from_str(&format!("Bearer {}", key.trim()));
            match (bearer, HeaderValue::from_str(key.trim())) {
                (Ok(mut bearer), Ok(mut raw)) => {
                    bearer.set_sensitive(true);
                    raw.set_sensitive(true);
                    Auth::Key { bearer, raw }
                }
                _ => Auth::Missing(var.to_owned()),
            }
        }
        _ => Auth::Missing(var.to_owned()),
    }
}
