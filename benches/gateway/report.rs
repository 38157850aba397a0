//! The report: figures (daemon, direct, floor, the daemon's ratio to or
//! difference from each of the other two, the target, the side it is
//! judged against, and whether it was met), notes, and raw per-run numbers;
//! printed as a Markdown table and written to `<out>/gateway.md` and
//! `<out>/gateway.json`.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

/// How a figure's daemon value is compared with the direct and floor ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    /// No comparison (the figure has one value).
    None,
    /// daemon − other.
    Difference,
    /// daemon ÷ other.
    Ratio,
}

/// A target: the checked value (the comparison with the side it is judged
/// against if any, else the daemon's) must be at most or at least this.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// ≤ this.
    AtMost(f64),
    /// ≥ this.
    AtLeast(f64),
}

/// The side a target compares the daemon with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versus {
    /// The fake provider, directly.
    Direct,
    /// nginx on the same hop.
    Floor,
}

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Scenario number.
    pub scenario: u8,
    /// What it is, with its unit.
    pub name: String,
    /// The daemon's value.
    pub daemon: Option<f64>,
    /// The direct baseline's value.
    pub direct: Option<f64>,
    /// The floor's value.
    pub floor: Option<f64>,
    /// How the daemon is compared with the others.
    pub compare: Compare,
    /// The target, if there is one.
    pub target: Option<Target>,
    /// What the target compares with.
    pub versus: Versus,
}

impl Figure {
    /// The daemon's value compared with `other`, if both were measured (a
    /// ratio only to a positive value: a negative one is noise in a
    /// difference, and no ratio to it means anything).
    fn compared_with(&self, other: Option<f64>) -> Option<f64> {
        let (a, b) = (self.daemon?, other?);
        match self.compare {
            Compare::None => None,
            Compare::Difference => Some(a - b),
            Compare::Ratio => (b > 0.0).then(|| a / b),
        }
    }

    /// The comparison with the direct baseline.
    pub fn compared(&self) -> Option<f64> {
        self.compared_with(self.direct)
    }

    /// The comparison with the floor.
    pub fn compared_to_floor(&self) -> Option<f64> {
        self.compared_with(self.floor)
    }

    /// Whether the target was met (`None`: no target, or not measured).
    pub fn met(&self) -> Option<bool> {
        let value = match (self.compare, self.versus) {
            (Compare::None, _) => self.daemon?,
            (_, Versus::Direct) => self.compared()?,
            (_, Versus::Floor) => self.compared_to_floor()?,
        };
        Some(match self.target? {
            Target::AtMost(t) => value <= t,
            Target::AtLeast(t) => value >= t,
        })
    }

    /// Sets the floor's value and, if given, a target against the floor
    /// (which replaces any target against the direct baseline).
    pub fn floor(&mut self, value: Option<f64>, target: Option<Target>) -> &mut Figure {
        self.floor = value;
        if target.is_some() {
            self.target = target;
            self.versus = Versus::Floor;
        }
        self
    }

    /// The target as the table shows it, e.g. `÷ floor ≥ 0.9`.
    fn target_text(&self) -> String {
        let Some(target) = self.target else {
            return "—".to_owned();
        };
        let side = match self.versus {
            Versus::Direct => "direct",
            Versus::Floor => "floor",
        };
        let what = match self.compare {
            Compare::Difference => format!("− {side} "),
            Compare::Ratio => format!("÷ {side} "),
            Compare::None => String::new(),
        };
        match target {
            Target::AtMost(v) => format!("{what}≤ {}", num(v)),
            Target::AtLeast(v) => format!("{what}≥ {}", num(v)),
        }
    }

    /// A comparison as the table shows it.
    fn compared_text(&self, value: Option<f64>) -> String {
        match (self.compare, value) {
            (Compare::Difference, Some(v)) => format!("{v:+.1}"),
            (Compare::Ratio, Some(v)) => format!("×{v:.3}"),
            _ => "—".to_owned(),
        }
    }

    /// The figure for the JSON report.
    fn to_json(&self) -> Value {
        let (vs_direct, vs_floor) = match self.compare {
            Compare::None => ("none", "none"),
            Compare::Difference => ("daemon - direct", "daemon - floor"),
            Compare::Ratio => ("daemon / direct", "daemon / floor"),
        };
        json!({
            "scenario": self.scenario,
            "scenario_name": scenario_name(self.scenario),
            "figure": self.name,
            "daemon": self.daemon,
            "direct": self.direct,
            "floor": self.floor,
            "compare": vs_direct,
            "compared": self.compared(),
            "compare_floor": vs_floor,
            "compared_floor": self.compared_to_floor(),
            "target": self.target.map(|t| match t {
                Target::AtMost(v) => json!({"at_most": v}),
                Target::AtLeast(v) => json!({"at_least": v}),
            }),
            "target_versus": match self.versus {
                Versus::Direct => "direct",
                Versus::Floor => "floor",
            },
            "met": self.met(),
        })
    }
}

/// Everything one benchmark run found.
#[derive(Debug, Default)]
pub struct Report {
    /// The table rows.
    pub figures: Vec<Figure>,
    /// Notes printed under the table (methods, anomalies).
    pub notes: Vec<String>,
    /// Raw numbers per scenario, for the JSON.
    pub raw: serde_json::Map<String, Value>,
}

impl Report {
    /// Adds a row (with no floor value; [`Figure::floor`] adds one).
    pub fn add(
        &mut self,
        scenario: u8,
        name: impl Into<String>,
        daemon: Option<f64>,
        direct: Option<f64>,
        compare: Compare,
        target: Option<Target>,
    ) -> &mut Figure {
        self.figures.push(Figure {
            scenario,
            name: name.into(),
            daemon,
            direct,
            floor: None,
            compare,
            target,
            versus: Versus::Direct,
        });
        self.figures.last_mut().expect("just pushed")
    }

    /// Adds a note.
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// Stores raw numbers under `key`.
    pub fn raw(&mut self, key: &str, value: Value) {
        self.raw.insert(key.to_owned(), value);
    }

    /// The Markdown table and notes.
    pub fn markdown(&self, header: &str) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "{header}\n");
        md.push_str(
            "| scenario | figure | daemon | direct | floor | vs direct | vs floor | target | met? |\n",
        );
        md.push_str("|---|---|--:|--:|--:|--:|--:|---|---|\n");
        let value = |v: Option<f64>| v.map_or("—".to_owned(), num);
        for f in &self.figures {
            let met = match f.met() {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            };
            let _ = writeln!(
                md,
                "| {} {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                f.scenario,
                scenario_name(f.scenario),
                f.name,
                value(f.daemon),
                value(f.direct),
                value(f.floor),
                f.compared_text(f.compared()),
                f.compared_text(f.compared_to_floor()),
                f.target_text(),
                met
            );
        }
        if !self.notes.is_empty() {
            md.push_str("\nNotes:\n");
            for n in &self.notes {
                let _ = writeln!(md, "- {n}");
            }
        }
        md
    }

    /// Puts rows and notes in scenario order (scenarios run in another).
    pub fn sort(&mut self) {
        self.figures.sort_by_key(|f| f.scenario);
        let key = |n: &String| n.chars().next().and_then(|c| c.to_digit(10)).unwrap_or(9);
        self.notes.sort_by_key(key);
    }

    /// Prints the table and writes `gateway.md` and `gateway.json` to `out`.
    pub fn write(&self, out: &Path, header: &str, meta: Value) -> std::io::Result<()> {
        let md = self.markdown(header);
        println!("{md}");
        std::fs::write(out.join("gateway.md"), &md)?;
        let figures: Vec<Value> = self.figures.iter().map(Figure::to_json).collect();
        let mut doc = meta;
        doc["figures"] = Value::Array(figures);
        doc["notes"] = json!(self.notes);
        doc["raw"] = Value::Object(self.raw.clone());
        let text = serde_json::to_string_pretty(&doc).expect("serializable report");
        std::fs::write(out.join("gateway.json"), text + "\n")
    }
}

/// A short name per scenario number.
pub fn scenario_name(n: u8) -> &'static str {
    match n {
        1 => "overhead",
        2 => "saturation",
        3 => "concurrency",
        4 => "head-of-line",
        5 => "streaming",
        6 => "drain",
        7 => "routes",
        _ => "?",
    }
}

/// A number with as many decimals as it needs (at most one, except below 10).
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() < 10.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.1}")
    }
}

/// Now as an ISO-8601 UTC timestamp (`YYYY-MM-DDTHH:MM:SSZ`).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
