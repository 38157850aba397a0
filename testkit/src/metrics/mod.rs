//! A strict parser of Prometheus / OpenMetrics text expositions: [`Scrape`].
//!
//! Integration tests scrape the daemon's metrics endpoint (written by the
//! `prometheus-client` crate, so OpenMetrics: counters as `<name>_total`,
//! `# EOF` last) and query it by name and labels. The parser is strict on
//! purpose: a malformed line, a duplicated series or text after `# EOF` is
//! an error, so a broken exposition fails the test instead of reading as
//! "metric missing". Exemplars are checked and then ignored.
//!
//! ```
//! use switchboard_testkit::Scrape;
//!
//! let scrape = Scrape::parse("# TYPE reqs counter\nreqs_total{code=\"200\"} 3\n# EOF\n")
//!     .expect("a valid exposition");
//! assert_eq!(scrape.value("reqs_total", &[("code", "200")]), Some(3.0));
//! assert_eq!(scrape.metric_type("reqs_total"), Some("counter"));
//! ```

use std::collections::{HashMap, HashSet};

use line::{check_metric_name, parse_sample, parse_value, unescape_help};

mod line;

/// The `# TYPE` values the two formats define.
const TYPES: [&str; 9] = [
    "counter",
    "gauge",
    "histogram",
    "summary",
    "untyped",
    "unknown",
    "info",
    "stateset",
    "gaugehistogram",
];

/// Sample-name suffixes that belong to a family named without them, so
/// `reqs_total` finds the `# TYPE reqs counter` line.
const SUFFIXES: [&str; 8] = [
    "_total", "_created", "_count", "_sum", "_bucket", "_gcount", "_gsum", "_info",
];

/// Label pairs in the order written, values unescaped.
pub type Labels = Vec<(String, String)>;

/// One sample line: `name{labels} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name as written (with any `_total`/`_bucket` suffix).
    pub name: String,
    /// Labels in the order written, values unescaped.
    pub labels: Labels,
    /// The value (`+Inf`, `-Inf` and `NaN` included).
    pub value: f64,
    /// The timestamp if one was written (milliseconds in Prometheus text,
    /// seconds in OpenMetrics; kept as written).
    pub timestamp: Option<f64>,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the sample has every one of `want` (other labels free).
    pub fn has_labels(&self, want: &[(&str, &str)]) -> bool {
        want.iter().all(|(n, v)| self.label(n) == Some(*v))
    }

    /// Whether the sample's labels are exactly `want`, in any order.
    fn labels_are(&self, want: &[(&str, &str)]) -> bool {
        self.labels.len() == want.len() && self.has_labels(want)
    }
}

/// What the comment lines said about one metric family.
#[derive(Debug, Clone, Default)]
struct Family {
    /// From `# TYPE`.
    kind: Option<String>,
    /// From `# HELP`, unescaped.
    help: Option<String>,
    /// From `# UNIT`.
    unit: Option<String>,
}

/// A parsed exposition: every sample in order, and the families' metadata.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    /// Every sample line, in order.
    samples: Vec<Sample>,
    /// Metadata by family name.
    families: HashMap<String, Family>,
    /// Whether `# EOF` was seen.
    eof: bool,
}

impl Scrape {
    /// Parses a whole exposition. Blank lines and plain comments are
    /// skipped; the error names the first bad line (1-based) and quotes it.
    pub fn parse(text: &str) -> Result<Scrape, String> {
        let mut scrape = Scrape::default();
        let mut series = HashSet::new();
        for (i, line) in text.lines().enumerate() {
            let fail = |why: String| format!("line {}: {why}: {line:?}", i + 1);
            if line.trim().is_empty() {
                continue;
            }
            if scrape.eof {
                return Err(fail("text after # EOF".to_owned()));
            }
            if let Some(comment) = line.strip_prefix('#') {
                scrape.comment(comment).map_err(fail)?;
                continue;
            }
            let sample = parse_sample(line).map_err(fail)?;
            let mut key = sample.labels.clone();
            key.sort();
            if !series.insert((sample.name.clone(), key)) {
                return Err(fail("a second sample of the same series".to_owned()));
            }
            scrape.samples.push(sample);
        }
        Ok(scrape)
    }

    /// Every sample, in exposition order.
    pub fn all(&self) -> &[Sample] {
        &self.samples
    }

    /// The samples named exactly `name`, whatever their labels.
    pub fn samples<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The value of the sample `name` whose labels are exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples(name)
            .find(|s| s.labels_are(labels))
            .map(|s| s.value)
    }

    /// The sum over the samples `name` that have all of `labels` (others
    /// free); 0 if none match, as for a labelled counter never incremented.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(name)
            .filter(|s| s.has_labels(labels))
            .map(|s| s.value)
            .sum()
    }

    /// [`Scrape::sum`] of the histogram's (or summary's) `<base>_count`.
    pub fn histogram_count(&self, base: &str, labels: &[(&str, &str)]) -> f64 {
        self.sum(&format!("{base}_count"), labels)
    }

    /// [`Scrape::sum`] of the histogram's (or summary's) `<base>_sum`.
    pub fn histogram_sum(&self, base: &str, labels: &[(&str, &str)]) -> f64 {
        self.sum(&format!("{base}_sum"), labels)
    }

    /// The cumulative count of bucket `le` (compared as a number, so `1`
    /// finds `le="1.0"`; `f64::INFINITY` finds `+Inf`), summed over the
    /// `<base>_bucket` samples with all of `labels`. `None` if no such
    /// bucket exists, so a bound the histogram lacks fails loudly.
    pub fn bucket(&self, base: &str, labels: &[(&str, &str)], le: f64) -> Option<f64> {
        let name = format!("{base}_bucket");
        self.samples(&name)
            .filter(|s| s.has_labels(labels))
            .filter(|s| s.label("le").and_then(|b| parse_value(b).ok()) == Some(le))
            .map(|s| s.value)
            .reduce(|a, b| a + b)
    }

    /// The `# TYPE` of `name`'s family: `name` itself, or `name` without a
    /// suffix such as `_total` or `_bucket`.
    pub fn metric_type(&self, name: &str) -> Option<&str> {
        self.family(name, |f| f.kind.as_deref())
    }

    /// The `# HELP` text (unescaped) of `name`'s family.
    pub fn help(&self, name: &str) -> Option<&str> {
        self.family(name, |f| f.help.as_deref())
    }

    /// The `# UNIT` of `name`'s family.
    pub fn unit(&self, name: &str) -> Option<&str> {
        self.family(name, |f| f.unit.as_deref())
    }

    /// Whether the exposition ended with `# EOF`, as OpenMetrics requires
    /// (a truncated scrape lacks it).
    pub fn ended_with_eof(&self) -> bool {
        self.eof
    }

    /// `field` of the family of `name`, trying the name as is, then without
    /// each known suffix.
    fn family<'a>(
        &'a self,
        name: &str,
        field: impl Fn(&'a Family) -> Option<&'a str>,
    ) -> Option<&'a str> {
        let bases = SUFFIXES.iter().filter_map(|s| name.strip_suffix(s));
        std::iter::once(name)
            .chain(bases)
            .find_map(|base| self.families.get(base).and_then(&field))
    }

    /// Handles a line that starts with `#` (`rest` follows the `#`).
    fn comment(&mut self, rest: &str) -> Result<(), String> {
        let Some(rest) = rest.strip_prefix(' ') else {
            return Ok(());
        };
        let (keyword, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let (name, arg) = rest.split_once(' ').unwrap_or((rest, ""));
        let slot = match keyword {
            "EOF" if rest.is_empty() => {
                self.eof = true;
                return Ok(());
            }
            "EOF" => return Err("text after # EOF".to_owned()),
            "TYPE" | "HELP" | "UNIT" => {
                check_metric_name(name)?;
                let family = self.families.entry(name.to_owned()).or_default();
                match keyword {
                    "TYPE" => &mut family.kind,
                    "HELP" => &mut family.help,
                    _ => &mut family.unit,
                }
            }
            _ => return Ok(()),
        };
        if slot.is_some() {
            return Err(format!("a second # {keyword} for {name}"));
        }
        *slot = Some(match keyword {
            "TYPE" if TYPES.contains(&arg) => arg.to_owned(),
            "TYPE" => return Err(format!("unknown metric type {arg:?}")),
            "HELP" => unescape_help(arg),
            _ => arg.to_owned(),
        });
        Ok(())
    }
}
