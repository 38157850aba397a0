//! Scenario 7: whether the daemon's other provider routes, Anthropic's
//! `POST /v1/messages` and OpenAI's `POST /v1/embeddings`, cost it more per
//! request than chat completions. Each route is scenario 2's closed loop
//! (64 connections, the instant fake provider, non-streamed answers)
//! through the daemon and straight to the fake provider; the six legs
//! alternate in rounds (ABBA order) so drift in the shared machine's load
//! hits every route alike. The daemon's CPU per request and throughput on
//! each route are compared with chat's from the same run.

use std::rc::Rc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::Bench;
use crate::daemon::Daemon;
use crate::http1::{Expect, Target};
use crate::load::{Side, closed_loop};
use crate::report::{Compare, Report, Target as Goal};
use crate::requests::{chat_body, chat_request, embeddings_request, messages_request};
use crate::rounds::{Leg, run_rounds, warm_up};
use crate::scenarios_load::SATURATION_CONNS;
use crate::stats::Stats;

/// Most a route's daemon CPU per request may be, as a multiple of chat's.
/// The claim is "no more than chat"; the 10 % above 1 is a margin for noise,
/// as two legs' CPU per request differ by a few per cent from round to
/// round on this shared 2-core VM even when they send the same request.
const CPU_AT_MOST: f64 = 1.10;

/// Least a route's daemon throughput may be, as a multiple of chat's: the
/// same claim with the same margin for noise, the other way round.
const RATE_AT_LEAST: f64 = 0.90;

/// A route of the daemon's, and the same request sent to the fake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `POST /v1/chat/completions`, the reference.
    Chat,
    /// `POST /v1/messages` (the provider's `anthropic_base_url`).
    Messages,
    /// `POST /v1/embeddings`.
    Embeddings,
}

impl Route {
    /// Every route, the reference first.
    const ALL: [Route; 3] = [Route::Chat, Route::Messages, Route::Embeddings];

    /// Its name in the table and the JSON.
    fn name(self) -> &'static str {
        match self {
            Route::Chat => "chat completions",
            Route::Messages => "messages",
            Route::Embeddings => "embeddings",
        }
    }

    /// The complete request for `model`.
    fn request(self, model: &str) -> Vec<u8> {
        match self {
            Route::Chat => chat_request(&chat_body(model, false)),
            Route::Messages => messages_request(model),
            Route::Embeddings => embeddings_request(model),
        }
    }

    /// A success; `session`: with the daemon's `session` object in it.
    fn expect(self, session: bool) -> Expect {
        match self {
            Route::Chat => Expect::Completion { session },
            Route::Messages => Expect::Object {
                key: r#""content""#,
                session,
            },
            Route::Embeddings => Expect::Object {
                key: r#""data""#,
                session,
            },
        }
    }
}

/// One route's two legs.
struct RouteLegs {
    /// Which route.
    route: Route,
    /// Through the daemon, to its `fast` provider.
    daemon: Leg,
    /// Straight to the fake provider.
    direct: Leg,
}

impl RouteLegs {
    /// `route`'s legs through `daemon` and direct.
    fn new(b: &Bench, daemon: &Daemon, route: Route) -> Self {
        let via = Side::new(
            "daemon",
            daemon.target(),
            route.request("fast/instant"),
            route.expect(true),
        );
        let direct = Side::new(
            "direct",
            Target::Tcp(b.fast.addr()),
            route.request("instant"),
            route.expect(false),
        );
        RouteLegs {
            route,
            daemon: Leg::new(via, b.probe(Some(daemon.gateway()))),
            direct: Leg::new(direct, b.probe(None)),
        }
    }
}

/// Every leg of every route, in the first round's order.
fn every_leg(routes: &mut [RouteLegs]) -> Vec<&mut Leg> {
    routes
        .iter_mut()
        .flat_map(|r| [&mut r.daemon, &mut r.direct])
        .collect()
}

/// Rounds, each leg's run per round, and each leg's warm-up: 6 × 1.5 s
/// (an even count, so the ABBA order balances exactly); quick: 2 × 0.25 s,
/// both orders in about 3 s for the six legs.
fn timing(b: &Bench) -> (usize, Duration, Duration) {
    match b.opts.quick {
        true => (2, Duration::from_millis(250), Duration::from_millis(100)),
        false => (6, Duration::from_millis(1500), Duration::from_millis(500)),
    }
}

/// Scenario 7: the three routes through `daemon` and direct, closed loop.
pub async fn routes(b: &Bench, daemon: &Daemon, r: &mut Report) -> anyhow::Result<()> {
    let mut routes: Vec<RouteLegs> = Route::ALL
        .iter()
        .map(|&route| RouteLegs::new(b, daemon, route))
        .collect();
    let (n, each, warm) = timing(b);
    let load = |length: Duration| {
        move |side: Rc<Side>| async move { Ok(closed_loop(&side, SATURATION_CONNS, length).await) }
    };
    warm_up(every_leg(&mut routes), load(warm)).await?;
    run_rounds(every_leg(&mut routes), n, load(each)).await?;
    per_route_rows(r, &routes);
    versus_chat_rows(r, &routes);
    r.note(routes_note(&routes, n, each));
    r.raw("7_routes", routes_json(&routes, n, each));
    Ok(())
}

/// Each route's throughput (daemon vs direct) and the daemon's CPU per
/// request, and every route's errors together.
fn per_route_rows(r: &mut Report, routes: &[RouteLegs]) {
    for leg in routes {
        let (d, x) = (&leg.daemon.stats, &leg.direct.stats);
        let name = format!("{}: throughput (req/s)", leg.route.name());
        let rates = (Some(d.rate()), Some(x.rate()));
        r.add(7, name, rates.0, rates.1, Compare::Ratio, None);
        let name = format!("{}: daemon CPU µs/request", leg.route.name());
        let cpu = Some(d.cpu_per_request().2);
        r.add(7, name, cpu, None, Compare::None, None);
    }
    let errors = |of: fn(&RouteLegs) -> &Leg| {
        Some(routes.iter().map(|l| of(l).stats.errors()).sum::<u64>() as f64)
    };
    let (d, x) = (errors(|l| &l.daemon), errors(|l| &l.direct));
    let none = Some(Goal::AtMost(0.0));
    r.add(7, "errors, every route", d, x, Compare::None, none);
}

/// The targets: messages and embeddings against chat, the daemon's CPU per
/// request and throughput.
fn versus_chat_rows(r: &mut Report, routes: &[RouteLegs]) {
    let chat = &routes[0].daemon.stats;
    for leg in &routes[1..] {
        let stats = &leg.daemon.stats;
        let label = |what: &str| {
            let route = leg.route.name();
            format!("{route} ÷ chat: daemon {what} [daemon col: {route}, direct col: chat]")
        };
        let cpu = |s: &Stats| Some(s.cpu_per_request().2);
        let at_most = Some(Goal::AtMost(CPU_AT_MOST));
        let name = label("CPU µs/request");
        r.add(7, name, cpu(stats), cpu(chat), Compare::Ratio, at_most);
        let at_least = Some(Goal::AtLeast(RATE_AT_LEAST));
        let (rate, chat_rate) = (Some(stats.rate()), Some(chat.rate()));
        let name = label("throughput (req/s)");
        r.add(7, name, rate, chat_rate, Compare::Ratio, at_least);
    }
}

/// Scenario 7's note: how it ran, and what the fake alone does per route,
/// so a route whose upstream answer costs more to make is told apart from
/// one the daemon handles at more cost.
fn routes_note(routes: &[RouteLegs], n: usize, each: Duration) -> String {
    let chat = &routes[0].direct.stats;
    let fake = |s: &Stats| s.cpu_per_request().1;
    let alone: Vec<String> = routes[1..]
        .iter()
        .map(|leg| {
            let s = &leg.direct.stats;
            format!(
                "{} ÷ chat ×{:.3} req/s, fake CPU {:.1} vs {:.1} µs/request",
                leg.route.name(),
                s.rate() / chat.rate().max(1e-9),
                fake(s),
                fake(chat),
            )
        })
        .collect();
    format!(
        "7: closed loop, {SATURATION_CONNS} connections, instant fake provider, non-streamed; \
         chat completions, messages and embeddings each through the daemon and direct, \
         {n} rounds of {:.2} s per leg in ABBA order. Direct (the fake alone): {}",
        each.as_secs_f64(),
        alone.join("; "),
    )
}

/// The legs' raw numbers for the JSON report.
fn routes_json(routes: &[RouteLegs], n: usize, each: Duration) -> Value {
    let mut by_route = serde_json::Map::new();
    for leg in routes {
        let value = json!({
            "daemon": leg.daemon.stats.to_json(),
            "direct": leg.direct.stats.to_json(),
        });
        by_route.insert(leg.route.name().to_owned(), value);
    }
    json!({
        "connections": SATURATION_CONNS,
        "rounds": n,
        "round_s": each.as_secs_f64(),
        "routes": by_route,
    })
}
