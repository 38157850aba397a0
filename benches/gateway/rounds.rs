//! Runs of several sides of a comparison in alternating rounds: the daemon,
//! the daemon without history and metrics, the fake provider directly. The
//! order reverses every round (A B C, C B A, …), so drift in the shared
//! machine's load hits every side alike.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use anyhow::Context as _;

use crate::Bench;
use crate::daemon::Daemon;
use crate::http1::{Expect, Target, chat_body, chat_request};
use crate::load::Side;
use crate::procfs::CpuProbe;
use crate::stats::Stats;

/// One side, its CPU probe, and all it measured.
pub struct Leg {
    /// Where the load goes.
    pub side: Rc<Side>,
    /// The CPU of the client, the fake and this side's daemon.
    probe: CpuProbe,
    /// Every round's figures, merged.
    pub stats: Stats,
}

/// The legs of a comparison, by role.
pub struct Legs {
    /// Through the daemon, history and metrics on.
    pub daemon: Leg,
    /// Through a daemon with history and metrics off, when measured.
    pub bare: Option<Leg>,
    /// Straight to the fake provider.
    pub direct: Leg,
}

fn leg(b: &Bench, name: &'static str, daemon: Option<&Daemon>, model: &str) -> Leg {
    let side = match daemon {
        Some(d) => Side::new(
            name,
            d.target(),
            chat_request(&chat_body(&format!("fast/{model}"), false)),
            Expect::Completion { session: true },
        ),
        None => Side::new(
            name,
            Target::Tcp(b.fast.addr()),
            chat_request(&chat_body(model, false)),
            Expect::Completion { session: false },
        ),
    };
    Leg {
        side,
        probe: b.probe(daemon),
        stats: Stats::default(),
    }
}

impl Legs {
    /// The legs for `model` on the `fast` provider: through `daemon`,
    /// through `bare` when given, and direct.
    pub fn new(b: &Bench, daemon: &Daemon, bare: Option<&Daemon>, model: &str) -> Self {
        Self {
            daemon: leg(b, "daemon", Some(daemon), model),
            bare: bare.map(|bare| leg(b, "bare", Some(bare), model)),
            direct: leg(b, "direct", None, model),
        }
    }

    /// Runs `load` on every leg, `rounds` times in alternating order.
    pub async fn run<F, Fut>(&mut self, rounds: usize, load: F) -> anyhow::Result<()>
    where
        F: Fn(Rc<Side>) -> Fut,
        Fut: Future<Output = anyhow::Result<Stats>>,
    {
        for round in 0..rounds {
            let mut legs: Vec<&mut Leg> = [
                Some(&mut self.daemon),
                self.bare.as_mut(),
                Some(&mut self.direct),
            ]
            .into_iter()
            .flatten()
            .collect();
            if round % 2 == 1 {
                legs.reverse();
            }
            for leg in legs {
                let before = leg.probe.sample();
                let mut stats = load(leg.side.clone())
                    .await
                    .with_context(|| format!("the load through {}", leg.side.name))?;
                stats.cpu = leg.probe.sample().since(&before);
                leg.stats.merge(&stats);
            }
        }
        Ok(())
    }

    /// Warms every leg up with `load`.
    pub async fn warm<F, Fut>(&self, load: F) -> anyhow::Result<()>
    where
        F: Fn(Rc<Side>) -> Fut,
        Fut: Future<Output = anyhow::Result<Stats>>,
    {
        let legs = [Some(&self.daemon), self.bare.as_ref(), Some(&self.direct)];
        for leg in legs.into_iter().flatten() {
            load(leg.side.clone()).await?;
        }
        Ok(())
    }
}

/// Rounds and their length: 5 × 2 s per side (quick: 1 × 1 s).
pub fn rounds(b: &Bench) -> (usize, Duration) {
    if b.opts.quick {
        (1, Duration::from_secs(1))
    } else {
        (5, Duration::from_secs(2))
    }
}
