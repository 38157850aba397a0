//! Scenario 7: whether the daemon's other provider routes, Anthropic's
//! `POST /v1/messages` and OpenAI's `POST /v1/embeddings`, cost it more per
//! request than chat completions. Each route is scenario 2's closed loop
//! (64 connections, the instant fake provider, non-streamed answers)
//! through the daemon and straight to the fake provider; the six legs
//! alternate in rounds (ABBA order) so drift in the shared machine's load
//! hits every route alike. The daemon's CPU per request and throughput on
//! each route are compared with chat's round by round, and the targets are
//! on the median of those ratios: on this shared VM a burst of other work
//! can double one leg's CPU per request, and it then moves one round's
//! ratio, not the run's.

use std::rc::Rc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::Bench;
use crate::daemon::Daemon;
use crate::http1::{Expect, Target};
use crate::load::{Side, closed_loop};
use crate::report::{Compare, Report, Target as Goal};
use crate::requests::{chat_body, chat_request, embeddings_request, messages_request};
use crate::rounds::{Leg, RoundFigures, run_rounds, warm_up};
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

/// Every leg of every route in the first round's order: the daemon's three
/// back to back, so the legs compared round by round run seconds apart,
/// then the direct ones.
fn every_leg(routes: &mut [RouteLegs]) -> Vec<&mut Leg> {
    let (daemon, direct): (Vec<&mut Leg>, Vec<&mut Leg>) = routes
        .iter_mut()
        .map(|r| (&mut r.daemon, &mut r.direct))
        .unzip();
    daemon.into_iter().chain(direct).collect()
}

/// Rounds, each leg's run per round, and each leg's warm-up: 10 × 1 s
/// (an even count, so the ABBA order balances exactly, and enough rounds
/// for a median); quick: 2 × 0.25 s, both orders in about 3 s.
fn timing(b: &Bench) -> (usize, Duration, Duration) {
    match b.opts.quick {
        true => (2, Duration::from_millis(250), Duration::from_millis(100)),
        false => (10, Duration::from_secs(1), Duration::from_millis(500)),
    }
}

/// How one leg compares with another over the rounds: the median of the
/// rounds' ratios, the lowest and the highest.
#[derive(Debug, Clone, Copy)]
struct Spread {
    /// The median ratio (of an even count, the mean of the middle two).
    median: f64,
    /// The lowest round's.
    low: f64,
    /// The highest round's.
    high: f64,
}

impl Spread {
    /// `of(leg)` ÷ `of(chat)`, round by round.
    fn of(leg: &Leg, chat: &Leg, of: fn(&RoundFigures) -> f64) -> Spread {
        let pairs = leg.by_round.iter().zip(&chat.by_round);
        let mut ratios: Vec<f64> = pairs.map(|(a, c)| of(a) / of(c).max(1e-9)).collect();
        ratios.sort_by(f64::total_cmp);
        let n = ratios.len();
        let median = match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => ratios[n / 2],
            _ => (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0,
        };
        let low = ratios.first().copied().unwrap_or(f64::NAN);
        let high = ratios.last().copied().unwrap_or(f64::NAN);
        Spread { median, low, high }
    }

    /// For the note: `×median (×low–×high)`.
    fn text(&self) -> String {
        format!("×{:.3} (×{:.3}–×{:.3})", self.median, self.low, self.high)
    }
}

/// The daemon's CPU per request in a round.
fn gateway_cpu(f: &RoundFigures) -> f64 {
    f.cpu.2
}

/// The throughput in a round.
fn rate(f: &RoundFigures) -> f64 {
    f.rate
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
/// request and throughput, each the median of the rounds' ratios.
fn versus_chat_rows(r: &mut Report, routes: &[RouteLegs]) {
    let chat = &routes[0].daemon;
    for leg in &routes[1..] {
        let label = |what: &str| {
            let route = leg.route.name();
            format!("{route} ÷ chat: daemon {what}, median of the rounds' ratios")
        };
        let cpu = Spread::of(&leg.daemon, chat, gateway_cpu).median;
        let at_most = Some(Goal::AtMost(CPU_AT_MOST));
        let name = label("CPU per request");
        r.add(7, name, Some(cpu), None, Compare::None, at_most);
        let throughput = Spread::of(&leg.daemon, chat, rate).median;
        let at_least = Some(Goal::AtLeast(RATE_AT_LEAST));
        let name = label("throughput");
        r.add(7, name, Some(throughput), None, Compare::None, at_least);
    }
}

/// One route against chat for the note: the daemon's rounds' ratios and
/// the whole run's, and the fake's alone.
fn versus_chat_text(leg: &RouteLegs, chat: &RouteLegs) -> String {
    let pooled = |of: fn(&Stats) -> f64| of(&leg.daemon.stats) / of(&chat.daemon.stats).max(1e-9);
    let alone = &leg.direct.stats;
    let fake = |s: &Stats| s.cpu_per_request().1;
    format!(
        "{} ÷ chat: daemon CPU per request by round {}, whole run ×{:.3}; throughput by \
         round {}, whole run ×{:.3}; the fake alone ×{:.3} req/s, its CPU {:.1} vs {:.1} \
         µs/request",
        leg.route.name(),
        Spread::of(&leg.daemon, &chat.daemon, gateway_cpu).text(),
        pooled(|s| s.cpu_per_request().2),
        Spread::of(&leg.daemon, &chat.daemon, rate).text(),
        pooled(Stats::rate),
        alone.rate() / chat.direct.stats.rate().max(1e-9),
        fake(alone),
        fake(&chat.direct.stats),
    )
}

/// Scenario 7's note: how it ran, the spread of the rounds' ratios, and
/// what the fake alone does per route, so a route whose upstream answer
/// costs more to make is told apart from one the daemon handles at more
/// cost.
fn routes_note(routes: &[RouteLegs], n: usize, each: Duration) -> String {
    let against: Vec<String> = routes[1..]
        .iter()
        .map(|leg| versus_chat_text(leg, &routes[0]))
        .collect();
    format!(
        "7: closed loop, {SATURATION_CONNS} connections, instant fake provider, non-streamed; \
         chat completions, messages and embeddings each through the daemon and direct, \
         {n} rounds of {:.2} s per leg in ABBA order, the daemon's legs back to back. \
         Median (lowest–highest) of the rounds' ratios: {}",
        each.as_secs_f64(),
        against.join("; "),
    )
}

/// The legs' raw numbers for the JSON report.
fn routes_json(routes: &[RouteLegs], n: usize, each: Duration) -> Value {
    let mut by_route = serde_json::Map::new();
    for leg in routes {
        let rounds = |l: &Leg| {
            let each = l.by_round.iter();
            each.map(|f| json!({"rate_per_s": f.rate, "gateway_cpu_us_per_request": f.cpu.2}))
                .collect::<Vec<Value>>()
        };
        let value = json!({
            "daemon": leg.daemon.stats.to_json(),
            "direct": leg.direct.stats.to_json(),
            "daemon_by_round": rounds(&leg.daemon),
            "direct_by_round": rounds(&leg.direct),
        });
        by_route.insert(leg.route.name().to_owned(), value);
    }
    let chat = &routes[0].daemon;
    let spread = |s: Spread| json!({"median": s.median, "lowest": s.low, "highest": s.high});
    let versus_chat: serde_json::Map<String, Value> = routes[1..]
        .iter()
        .map(|leg| {
            let cpu = Spread::of(&leg.daemon, chat, gateway_cpu);
            let throughput = Spread::of(&leg.daemon, chat, rate);
            let value =
                json!({"daemon_cpu_per_request": spread(cpu), "throughput": spread(throughput)});
            (leg.route.name().to_owned(), value)
        })
        .collect();
    json!({
        "connections": SATURATION_CONNS,
        "rounds": n,
        "round_s": each.as_secs_f64(),
        "routes": by_route,
        "daemon_versus_chat_by_round": versus_chat,
    })
}
