//! The daemon settings file the launcher writes, as table → key lines.
//!
//! Used by [`crate::DaemonBuilder`]: defaults and test-supplied TOML snippets
//! are merged per table, so `.toml("[sessions]\ntimeout_ms = 5")` replaces
//! the default `timeout_ms` instead of producing a duplicate table or key.
//! This is line-based, not a TOML parser: each `key = value` line starts an
//! entry, other non-blank lines continue the previous entry (multi-line
//! arrays), `[table]` switches table, and `[[array]]` blocks are kept verbatim.

use std::collections::BTreeMap;

/// One `key = value` entry, possibly spanning several lines.
#[derive(Debug, Clone)]
struct Entry {
    /// The key as written (trimmed), used to replace earlier values.
    key: String,
    /// The full text of the entry, continuation lines included.
    text: String,
}

/// A settings file under construction.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    /// Table name (`""` for top-level keys) → its entries, in insertion order.
    tables: BTreeMap<String, Vec<Entry>>,
    /// `[[array]]` blocks, appended verbatim at the end.
    arrays: Vec<String>,
}

impl Settings {
    /// Sets `key` in `table` to `value`, which must already be TOML
    /// (e.g. from [`toml_string`]); a previous value is replaced in place.
    pub(crate) fn set(&mut self, table: &str, key: &str, value: &str) {
        self.upsert(table, key.to_owned(), format!("{key} = {value}"));
    }

    /// Merges a TOML snippet whose keys before any header go in `table`.
    ///
    /// Panics on a continuation line with no entry before it, since that
    /// means the snippet is not what the test author meant.
    pub(crate) fn merge(&mut self, table: &str, snippet: &str) {
        let mut current = table.to_owned();
        let mut in_array = false;
        self.tables.entry(current.clone()).or_default();
        for raw in snippet.lines() {
            let line = raw.trim();
            if line.starts_with("[[") {
                in_array = true;
                self.arrays.push(line.to_owned());
            } else if in_array && !line.starts_with('[') {
                if let Some(block) = self.arrays.last_mut() {
                    block.push('\n');
                    block.push_str(line);
                }
            } else if line.is_empty() || line.starts_with('#') {
                continue;
            } else if let Some(name) = table_header(line) {
                in_array = false;
                current = name.to_owned();
                self.tables.entry(current.clone()).or_default();
            } else if let Some(key) = entry_key(line) {
                self.upsert(&current, key.to_owned(), line.to_owned());
            } else {
                self.continue_last(&current, line);
            }
        }
    }

    /// Renders the file: top-level keys, then each table, then arrays.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        for (name, entries) in &self.tables {
            if !name.is_empty() {
                out.push_str(&format!("[{name}]\n"));
            }
            for entry in entries {
                out.push_str(&entry.text);
                out.push('\n');
            }
        }
        for block in &self.arrays {
            out.push_str(block);
            out.push('\n');
        }
        out
    }

    /// Whether `key` is set in `table`.
    pub(crate) fn has(&self, table: &str, key: &str) -> bool {
        self.tables
            .get(table)
            .is_some_and(|entries| entries.iter().any(|e| e.key == key))
    }

    /// Inserts or replaces the entry for `key` in `table`.
    fn upsert(&mut self, table: &str, key: String, text: String) {
        let entries = self.tables.entry(table.to_owned()).or_default();
        match entries.iter_mut().find(|e| e.key == key) {
            Some(existing) => existing.text = text,
            None => entries.push(Entry { key, text }),
        }
    }

    /// Appends a continuation line to the last entry of `table`.
    fn continue_last(&mut self, table: &str, line: &str) {
        let last = self
            .tables
            .get_mut(table)
            .and_then(|entries| entries.last_mut())
            .unwrap_or_else(|| {
                panic!("settings snippet: line {line:?} is not `key = value` and continues nothing")
            });
        last.text.push('\n');
        last.text.push_str(line);
    }
}

/// The name inside a `[table]` header line (trailing comment allowed).
fn table_header(line: &str) -> Option<&str> {
    let line = line
        .split_once('#')
        .map_or(line, |(head, _)| head)
        .trim_end();
    let inner = line.strip_prefix('[')?.strip_suffix(']')?;
    Some(inner.trim())
}

/// The bare (possibly dotted) key of a `key = value` line, if it is one.
fn entry_key(line: &str) -> Option<&str> {
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let bare = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ');
    (!key.is_empty() && key.chars().all(bare)).then_some(key)
}

/// Encodes `s` as a TOML basic string (quoted, with escapes).
pub(crate) fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_keys_replace_earlier_ones_in_the_same_table() {
        let mut s = Settings::default();
        s.set("sessions", "timeout_ms", "30000");
        s.set("server", "socket", &toml_string("/tmp/x.sock"));
        s.merge(
            "",
            "[sessions]\ntimeout_ms = 2000\nmax = 3\n\n[server]\n# note\nbacklog = 8",
        );
        assert_eq!(
            s.render(),
            "[server]\nsocket = \"/tmp/x.sock\"\nbacklog = 8\n[sessions]\ntimeout_ms = 2000\nmax = 3\n"
        );
    }

    #[test]
    fn keys_before_a_header_go_in_the_given_table_and_multiline_values_survive() {
        let mut s = Settings::default();
        s.set("providers.fake", "kind", &toml_string("openai"));
        s.merge(
            "providers.fake",
            "timeout_ms = 500\nmodels = [\n  \"a\",\n  \"b\",\n]",
        );
        assert_eq!(
            s.render(),
            "[providers.fake]\nkind = \"openai\"\ntimeout_ms = 500\nmodels = [\n\"a\",\n\"b\",\n]\n"
        );
    }

    #[test]
    fn inline_tables_inside_multiline_arrays_are_continuations() {
        let mut s = Settings::default();
        let snippet =
            "models = [\n  \"a\",\n  { name = \"b\", timeout_ms = 5 },\n]\ntimeout_ms = 9";
        s.merge("providers.fake", snippet);
        s.merge("providers.fake", "models = [\"c\"]");
        assert_eq!(
            s.render(),
            "[providers.fake]\nmodels = [\"c\"]\ntimeout_ms = 9\n"
        );
    }

    #[test]
    fn array_tables_are_kept_verbatim_at_the_end() {
        let mut s = Settings::default();
        s.merge("", "[[routes]]\nname = \"a\"\n[server]\nx = 1");
        assert_eq!(s.render(), "[server]\nx = 1\n[[routes]]\nname = \"a\"\n");
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(toml_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    }
}
