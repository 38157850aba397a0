//! Runs of several sides of a comparison in alternating rounds: the daemon,
//! the daemon without history and metrics, the floor (nginx on the same
//! hop), the fake provider directly. The order reverses every round
//! (A B C D, D C B A, …), so drift in the shared machine's load hits every
//! side alike. [`run_rounds`] does the same for any set of legs (scenario
//! 7's routes).

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use anyhow::Context as _;

use crate::Bench;
use crate::daemon::Daemon;
use crate::floor::Floor;
use crate::http1::{Expect, Target};
use crate::load::Side;
use crate::procfs::CpuProbe;
use crate::requests::{chat_body, chat_request};
use crate::stats::Stats;

/// One side, its CPU probe, and all it measured.
pub struct Leg {
    /// Where the load goes.
    pub side: Rc<Side>,
    /// The CPU of the client, the fake and this side's gateway.
    probe: CpuProbe,
    /// Every round's figures, merged.
    pub stats: Stats,
    /// Each round's rate and CPU alone, in order, so legs can be compared
    /// round by round: a burst of other load on the machine then skews one
    /// round's comparison, not the whole run's.
    pub by_round: Vec<RoundFigures>,
}

/// One round's figures of one leg.
#[derive(Debug, Clone, Copy)]
pub struct RoundFigures {
    /// Successes per second.
    pub rate: f64,
    /// CPU µs per finished request: the load client, the fake, the gateway.
    pub cpu: (f64, f64, f64),
}

/// The legs of a comparison, by role.
pub struct Legs {
    /// Through the daemon, history and metrics on.
    pub daemon: Leg,
    /// Through a daemon with history and metrics off, when measured.
    pub bare: Option<Leg>,
    /// Through nginx, when it is installed.
    pub floor: Option<Leg>,
    /// Straight to the fake provider.
    pub direct: Leg,
}

/// Where a leg's load goes.
enum Via<'a> {
    /// Through a daemon, to its `fast` provider.
    Daemon(&'a Daemon),
    /// Through nginx, which sends what the direct side sends.
    Floor(&'a Floor),
    /// To the fake provider.
    Direct,
}

/// A leg named `name` asking for `model` via `via`; the daemon's carries
/// the provider prefix and must answer with its `session` object.
fn leg(b: &Bench, name: &'static str, via: Via, model: &str) -> Leg {
    let plain = chat_request(&chat_body(model, false));
    let expect = Expect::Completion { session: false };
    let (side, gateway) = match via {
        Via::Daemon(d) => {
            let request = chat_request(&chat_body(&format!("fast/{model}"), false));
            let expect = Expect::Completion { session: true };
            (
                Side::new(name, d.target(), request, expect),
                Some(d.gateway()),
            )
        }
        Via::Floor(f) => (
            Side::new(name, f.target(), plain, expect),
            Some(f.gateway()),
        ),
        Via::Direct => (
            Side::new(name, Target::Tcp(b.fast.addr()), plain, expect),
            None,
        ),
    };
    Leg::new(side, b.probe(gateway))
}

impl Leg {
    /// A leg that has measured nothing yet.
    pub fn new(side: Rc<Side>, probe: CpuProbe) -> Leg {
        Leg {
            side,
            probe,
            stats: Stats::default(),
            by_round: Vec::new(),
        }
    }
}

impl Legs {
    /// The legs for `model` on the `fast` provider: through `daemon`,
    /// through `bare` and `floor` when given, and direct.
    pub fn new(
        b: &Bench,
        daemon: &Daemon,
        bare: Option<&Daemon>,
        floor: Option<&Floor>,
        model: &str,
    ) -> Self {
        Self {
            daemon: leg(b, "daemon", Via::Daemon(daemon), model),
            bare: bare.map(|bare| leg(b, "bare", Via::Daemon(bare), model)),
            floor: floor.map(|floor| leg(b, "floor", Via::Floor(floor), model)),
            direct: leg(b, "direct", Via::Direct, model),
        }
    }

    /// Every leg, in the first round's order.
    fn all(&mut self) -> Vec<&mut Leg> {
        let legs = [
            Some(&mut self.daemon),
            self.bare.as_mut(),
            self.floor.as_mut(),
            Some(&mut self.direct),
        ];
        legs.into_iter().flatten().collect()
    }

    /// Runs `load` on every leg, `rounds` times in alternating order.
    pub async fn run<F, Fut>(&mut self, rounds: usize, load: F) -> anyhow::Result<()>
    where
        F: Fn(Rc<Side>) -> Fut,
        Fut: Future<Output = anyhow::Result<Stats>>,
    {
        run_rounds(self.all(), rounds, load).await
    }

    /// Warms every leg up with `load`.
    pub async fn warm<F, Fut>(&mut self, load: F) -> anyhow::Result<()>
    where
        F: Fn(Rc<Side>) -> Fut,
        Fut: Future<Output = anyhow::Result<Stats>>,
    {
        warm_up(self.all(), load).await
    }
}

/// Runs `load` on every one of `legs`, `rounds` times, the order reversed
/// each round (A B C, C B A, A B C, …); each run's CPU is read around it
/// alone.
pub async fn run_rounds<F, Fut>(
    mut legs: Vec<&mut Leg>,
    rounds: usize,
    load: F,
) -> anyhow::Result<()>
where
    F: Fn(Rc<Side>) -> Fut,
    Fut: Future<Output = anyhow::Result<Stats>>,
{
    for round in 0..rounds {
        if round > 0 {
            legs.reverse();
        }
        for leg in legs.iter_mut() {
            let before = leg.probe.sample();
            let mut stats = load(leg.side.clone())
                .await
                .with_context(|| format!("the load through {}", leg.side.name))?;
            stats.cpu = leg.probe.sample().since(&before);
            leg.by_round.push(RoundFigures {
                rate: stats.rate(),
                cpu: stats.cpu_per_request(),
            });
            leg.stats.merge(&stats);
        }
    }
    Ok(())
}

/// Runs `load` once on every one of `legs`, measuring nothing: the
/// connections it opens stay for the rounds, and the first round does not
/// pay for them.
pub async fn warm_up<F, Fut>(legs: Vec<&mut Leg>, load: F) -> anyhow::Result<()>
where
    F: Fn(Rc<Side>) -> Fut,
    Fut: Future<Output = anyhow::Result<Stats>>,
{
    for leg in legs {
        load(leg.side.clone()).await?;
    }
    Ok(())
}

/// Rounds and their length: 5 × 2 s per side (quick: 1 × 1 s).
pub fn rounds(b: &Bench) -> (usize, Duration) {
    if b.opts.quick {
        (1, Duration::from_secs(1))
    } else {
        (5, Duration::from_secs(2))
    }
}
