//! Token usage the fake provider reports: where each real provider puts it
//! ([`UsageShape`]), how many tokens an answer claims, and the ledger of
//! everything claimed so far ([`UsageTotals`]).
//!
//! Used by the request handler (which picks the shape from the
//! `x-fake-usage` header or the provider's default), by `responses.rs`
//! (which places the usage object where the shape says), and by tests
//! through [`crate::FakeProvider::usage_reported`], so the daemon's token
//! accounting can be checked against what the upstream really claimed.

use std::collections::HashMap;
use std::fmt;
use std::iter::Sum;
use std::ops::AddAssign;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::lock;

/// The request header that picks where (and whether) usage is reported:
/// `glm`, `kimi`, `openai` or `none` (see [`UsageShape`]).
pub const USAGE_HEADER: &str = "x-fake-usage";

/// Where an answer carries its `usage` object. Non-streamed answers keep
/// OpenAI's top-level `usage` for every shape but [`UsageShape::None`]; the
/// shapes differ in streams, as the real providers' streams do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UsageShape {
    /// `glm` (the default): Zhipu GLM's top-level `usage` in the final
    /// chunk, the one with `finish_reason`.
    #[default]
    Glm,
    /// `kimi`: Moonshot Kimi's `usage` inside `choices[0]` of the final chunk.
    Kimi,
    /// `openai`: `"usage":null` in every chunk, then, after the final one,
    /// an extra chunk with `"choices":[]` and the top-level `usage` (what
    /// OpenAI sends for `stream_options.include_usage`).
    OpenAi,
    /// `none`: no usage anywhere, not even in a non-streamed body.
    None,
}

impl UsageShape {
    /// Every shape, for tests that go through them all.
    pub const ALL: [UsageShape; 4] = [
        UsageShape::Glm,
        UsageShape::Kimi,
        UsageShape::OpenAi,
        UsageShape::None,
    ];

    /// The value of [`USAGE_HEADER`] that picks this shape.
    pub fn keyword(self) -> &'static str {
        match self {
            UsageShape::Glm => "glm",
            UsageShape::Kimi => "kimi",
            UsageShape::OpenAi => "openai",
            UsageShape::None => "none",
        }
    }

    /// The shape named by `keyword` (exact, lower case), if any.
    pub fn from_keyword(keyword: &str) -> Option<UsageShape> {
        UsageShape::ALL.into_iter().find(|s| s.keyword() == keyword)
    }
}

impl fmt::Display for UsageShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.keyword())
    }
}

/// Token counts summed over answers, as [`crate::FakeProvider::usage_reported`]
/// returns them, to compare with what the daemon accounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsageTotals {
    /// How many usage objects were produced (answers sent with
    /// `x-fake-usage: none`, failures and unfinished streams report none).
    pub answers: u64,
    /// Sum of `prompt_tokens`.
    pub prompt_tokens: u64,
    /// Sum of `completion_tokens`.
    pub completion_tokens: u64,
    /// Sum of `total_tokens` (always `prompt_tokens + completion_tokens`).
    pub total_tokens: u64,
}

impl UsageTotals {
    /// The totals of one answer.
    fn one(prompt_tokens: u64, completion_tokens: u64) -> UsageTotals {
        UsageTotals {
            answers: 1,
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

impl AddAssign for UsageTotals {
    fn add_assign(&mut self, other: UsageTotals) {
        self.answers += other.answers;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
    }
}

impl Sum for UsageTotals {
    fn sum<I: Iterator<Item = UsageTotals>>(iter: I) -> UsageTotals {
        iter.fold(UsageTotals::default(), |mut acc, t| {
            acc += t;
            acc
        })
    }
}

/// Everything one fake provider has reported, per model as received.
#[derive(Debug, Default)]
pub(crate) struct UsageLedger {
    /// Totals keyed by the request body's `model` string.
    by_model: Mutex<HashMap<String, UsageTotals>>,
}

impl UsageLedger {
    /// The totals over every model.
    pub(crate) fn total(&self) -> UsageTotals {
        lock(&self.by_model).values().copied().sum()
    }

    /// The totals of requests whose `model` was exactly `model`.
    pub(crate) fn for_model(&self, model: &str) -> UsageTotals {
        lock(&self.by_model).get(model).copied().unwrap_or_default()
    }

    /// Adds one answer's usage under `model`.
    fn add(&self, model: &str, usage: UsageTotals) {
        *lock(&self.by_model).entry(model.to_owned()).or_default() += usage;
    }
}

/// The usage one request will report, decided when it arrives: the
/// prompt side depends only on the request, the completion side on what
/// the answer turns out to contain.
pub(crate) struct UsagePlan {
    /// Where the usage goes.
    shape: UsageShape,
    /// `prompt_tokens` of the answer.
    prompt_tokens: u64,
    /// Where reported usage is recorded.
    ledger: Arc<UsageLedger>,
}

impl UsagePlan {
    /// Plans the usage of an answer to `request`. `prompt_tokens` is the
    /// words of every string message content plus 8, so that different
    /// requests report different, predictable numbers.
    pub(crate) fn new(shape: UsageShape, request: &Value, ledger: Arc<UsageLedger>) -> UsagePlan {
        UsagePlan {
            shape,
            prompt_tokens: prompt_words(request) + 8,
            ledger,
        }
    }

    /// Where the usage goes.
    pub(crate) fn shape(&self) -> UsageShape {
        self.shape
    }

    /// `prompt_tokens` of the answer, without recording anything (an
    /// Anthropic stream announces it in its first event).
    pub(crate) fn prompt_tokens(&self) -> Option<u64> {
        (self.shape != UsageShape::None).then_some(self.prompt_tokens)
    }

    /// Records the usage of an answer to `model` with `completion_tokens`
    /// and returns `(prompt, completion)`; `None` (and nothing recorded)
    /// for [`UsageShape::None`].
    pub(crate) fn report_counts(&self, model: &str, completion_tokens: u64) -> Option<(u64, u64)> {
        if self.shape == UsageShape::None {
            return None;
        }
        let totals = UsageTotals::one(self.prompt_tokens, completion_tokens);
        self.ledger.add(model, totals);
        Some((totals.prompt_tokens, totals.completion_tokens))
    }

    /// [`UsagePlan::report_counts`] as OpenAI's JSON object.
    pub(crate) fn report(&self, model: &str, completion_tokens: u64) -> Option<Value> {
        let (prompt, completion) = self.report_counts(model, completion_tokens)?;
        Some(json!({
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0}
        }))
    }
}

/// A rough prompt size: whitespace-separated words of all string contents
/// (embeddings: of the `input` strings).
fn prompt_words(request: &Value) -> u64 {
    let words = |text: &str| text.split_whitespace().count() as u64;
    match request.get("input") {
        Some(Value::String(text)) => return words(text),
        Some(Value::Array(items)) => {
            return items.iter().filter_map(Value::as_str).map(words).sum();
        }
        _ => {}
    }
    let Some(messages) = request.get("messages").and_then(Value::as_array) else {
        return 0;
    };
    messages
        .iter()
        .filter_map(|m| m.get("content").and_then(Value::as_str))
        .map(|c| c.split_whitespace().count() as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_round_trip() {
        for shape in UsageShape::ALL {
            assert_eq!(UsageShape::from_keyword(shape.keyword()), Some(shape));
        }
        assert_eq!(UsageShape::from_keyword("GLM"), None);
        assert_eq!(UsageShape::default(), UsageShape::Glm);
    }

    #[test]
    fn reports_are_recorded_per_model_except_for_none() {
        let ledger = Arc::new(UsageLedger::default());
        let request = json!({"messages": [{"role": "user", "content": "one two three"}]});
        let plan = UsagePlan::new(UsageShape::Kimi, &request, Arc::clone(&ledger));
        let usage = plan.report("a", 5).expect("kimi reports usage");
        assert_eq!(usage["prompt_tokens"], 11);
        assert_eq!(usage["total_tokens"], 16);
        plan.report("b", 1);
        let silent = UsagePlan::new(UsageShape::None, &request, Arc::clone(&ledger));
        assert_eq!(silent.report("a", 5), None);
        assert_eq!(ledger.for_model("a"), UsageTotals::one(11, 5));
        assert_eq!(ledger.for_model("c"), UsageTotals::default());
        let total = ledger.total();
        assert_eq!((total.answers, total.total_tokens), (2, 16 + 12));
    }
}
