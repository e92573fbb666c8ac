//! Differences between two payloads of a topic's history: by JSON path when
//! both are JSON objects/arrays, line by line otherwise (with the `similar`
//! crate, so megabyte payloads diff in milliseconds).

use crate::model::payload::{PayloadKind, detect};
use serde_json::Value;
use similar::DiffTag;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    Changed,
}

/// One JSON value that differs; values are compact JSON text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonChange {
    /// `a.b[0]` style path; empty for the document itself.
    pub path: String,
    pub change: Change,
    pub old: Option<String>,
    pub new: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    Same,
    Added,
    Removed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiffLine {
    pub kind: LineKind,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Diff {
    /// Both payloads are JSON: the changed paths, in document order.
    Json(Vec<JsonChange>),
    /// Line diff of the payloads as text (binary is shown lossily; the view
    /// may prefer its hex dump).
    Lines(Vec<DiffLine>),
}

impl Diff {
    /// Whether the two payloads are equal for this diff.
    pub fn is_empty(&self) -> bool {
        match self {
            Diff::Json(changes) => changes.is_empty(),
            Diff::Lines(lines) => lines.iter().all(|l| l.kind == LineKind::Same),
        }
    }
}

/// Compares `old` with `new`.
pub fn diff(old: &[u8], new: &[u8]) -> Diff {
    if detect(old) == PayloadKind::Json
        && detect(new) == PayloadKind::Json
        && let (Ok(a), Ok(b)) = (
            serde_json::from_slice::<Value>(old),
            serde_json::from_slice::<Value>(new),
        )
    {
        let mut changes = Vec::new();
        let mut path = String::new();
        json_diff(&a, &b, &mut path, &mut changes);
        return Diff::Json(changes);
    }
    Diff::Lines(line_diff(
        &String::from_utf8_lossy(old),
        &String::from_utf8_lossy(new),
    ))
}

fn json_diff(a: &Value, b: &Value, path: &mut String, out: &mut Vec<JsonChange>) {
    match (a, b) {
        (Value::Object(ma), Value::Object(mb)) => {
            for (key, va) in ma {
                let len = path.len();
                push_key(path, key);
                match mb.get(key) {
                    Some(vb) => json_diff(va, vb, path, out),
                    None => out.push(JsonChange {
                        path: path.clone(),
                        change: Change::Removed,
                        old: Some(va.to_string()),
                        new: None,
                    }),
                }
                path.truncate(len);
            }
            for (key, vb) in mb {
                if !ma.contains_key(key) {
                    let len = path.len();
                    push_key(path, key);
                    out.push(JsonChange {
                        path: path.clone(),
                        change: Change::Added,
                        old: None,
                        new: Some(vb.to_string()),
                    });
                    path.truncate(len);
                }
            }
        }
        (Value::Array(xa), Value::Array(xb)) => {
            for i in 0..xa.len().max(xb.len()) {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                match (xa.get(i), xb.get(i)) {
                    (Some(va), Some(vb)) => json_diff(va, vb, path, out),
                    (Some(va), None) => out.push(JsonChange {
                        path: path.clone(),
                        change: Change::Removed,
                        old: Some(va.to_string()),
                        new: None,
                    }),
                    (None, Some(vb)) => out.push(JsonChange {
                        path: path.clone(),
                        change: Change::Added,
                        old: None,
                        new: Some(vb.to_string()),
                    }),
                    (None, None) => {}
                }
                path.truncate(len);
            }
        }
        _ => {
            if a != b {
                out.push(JsonChange {
                    path: path.clone(),
                    change: Change::Changed,
                    old: Some(a.to_string()),
                    new: Some(b.to_string()),
                });
            }
        }
    }
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
}

/// The longest a line diff may search for the smallest edit script. Past
/// it `similar` settles for a larger one, which is still a correct diff
/// (every line marked is really removed or added): never a frozen frame.
const DIFF_TIMEOUT: Duration = Duration::from_secs(2);

/// A line diff (Myers' algorithm, from the `similar` crate), in old-then-new
/// order: on a replaced block the removed lines come before the added ones,
/// as in `diff -u`. Lines are compared without their line ending.
pub fn line_diff(old: &str, new: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let deadline = Instant::now().checked_add(DIFF_TIMEOUT);
    let ops = similar::capture_diff_slices_deadline(similar::Algorithm::Myers, &a, &b, deadline);
    let line = |kind, text: &str| DiffLine {
        kind,
        text: text.to_string(),
    };
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    for op in ops {
        let (tag, old_range, new_range) = op.as_tag_tuple();
        let (old_lines, new_lines) = (
            a.get(old_range).unwrap_or_default(),
            b.get(new_range).unwrap_or_default(),
        );
        match tag {
            DiffTag::Equal => out.extend(old_lines.iter().map(|t| line(LineKind::Same, t))),
            DiffTag::Delete => out.extend(old_lines.iter().map(|t| line(LineKind::Removed, t))),
            DiffTag::Insert => out.extend(new_lines.iter().map(|t| line(LineKind::Added, t))),
            DiffTag::Replace => {
                out.extend(old_lines.iter().map(|t| line(LineKind::Removed, t)));
                out.extend(new_lines.iter().map(|t| line(LineKind::Added, t)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_diff_lists_added_removed_and_changed_paths() {
        let old = br#"{"temp": 21.5, "mode": "auto", "tags": [1, 2], "cfg": {"a": 1}}"#;
        let new = br#"{"temp": 22, "tags": [1, 3, 4], "cfg": {"a": 1, "b": null}, "on": true}"#;
        let Diff::Json(changes) = diff(old, new) else {
            panic!("both payloads are JSON");
        };
        let find = |p: &str| changes.iter().find(|c| c.path == p).cloned();
        let temp = find("temp").expect("temp changed");
        assert_eq!(temp.change, Change::Changed);
        assert_eq!(temp.old.as_deref(), Some("21.5"));
        assert_eq!(temp.new.as_deref(), Some("22"));
        assert_eq!(find("mode").map(|c| c.change), Some(Change::Removed));
        assert_eq!(find("tags[1]").map(|c| c.change), Some(Change::Changed));
        assert_eq!(find("tags[2]").map(|c| c.change), Some(Change::Added));
        assert_eq!(find("cfg.b").map(|c| c.change), Some(Change::Added));
        assert_eq!(find("on").and_then(|c| c.new), Some("true".to_string()));
        assert!(find("cfg.a").is_none(), "unchanged values are not listed");
        assert_eq!(changes.len(), 6);
    }

    #[test]
    fn equal_json_with_other_spacing_has_no_changes() {
        let d = diff(br#"{"a":1,"b":[1]}"#, b"{ \"b\": [1],\n \"a\": 1 }");
        assert_eq!(d, Diff::Json(Vec::new()));
        assert!(d.is_empty());
    }

    #[test]
    fn line_diff_marks_same_added_removed() {
        let d = diff(b"one\ntwo\nthree\nfour", b"one\n2\nthree\nfour\nfive");
        let Diff::Lines(lines) = d else {
            panic!("text payloads get a line diff");
        };
        let got: Vec<(LineKind, &str)> = lines.iter().map(|l| (l.kind, l.text.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (LineKind::Same, "one"),
                (LineKind::Removed, "two"),
                (LineKind::Added, "2"),
                (LineKind::Same, "three"),
                (LineKind::Same, "four"),
                (LineKind::Added, "five"),
            ]
        );
    }

    #[test]
    fn json_against_text_falls_back_to_line_diff() {
        let d = diff(br#"{"a":1}"#, b"offline");
        assert!(matches!(d, Diff::Lines(_)));
        assert!(!d.is_empty());
    }

    #[test]
    fn line_diff_finds_moved_block_via_lcs() {
        let lines = line_diff("a\nb\nc\nd", "a\nc\nd\nb");
        let kinds: Vec<LineKind> = lines.iter().map(|l| l.kind).collect();
        // Keeps a, c, d (LCS of length 3) and moves b.
        assert_eq!(kinds.iter().filter(|k| **k == LineKind::Same).count(), 3);
        assert_eq!(kinds.iter().filter(|k| **k == LineKind::Removed).count(), 1);
        assert_eq!(kinds.iter().filter(|k| **k == LineKind::Added).count(), 1);
    }

    /// 20,000 lines of about 50 bytes (1 MB); every other line differs.
    fn megabyte_pair() -> (String, String) {
        let mut old = String::new();
        let mut new = String::new();
        for i in 0..20_000 {
            let line =
                format!("{{\"row\": {i:6}, \"value\": \"sensor reading\", \"unit\": \"C\"}},\n");
            old.push_str(&line);
            if i % 2 == 1 {
                new.push_str(&format!(
                    "{{\"row\": {i:6}, \"value\": \"CHANGED reading\", \"unit\": \"C\"}},\n"
                ));
            } else {
                new.push_str(&line);
            }
        }
        (old, new)
    }

    #[test]
    fn megabyte_payload_diff_marks_only_the_changed_lines() {
        let (old, new) = megabyte_pair();
        assert!(old.len() > 1_000_000, "{}", old.len());
        let lines = line_diff(&old, &new);
        let removed: Vec<&DiffLine> = lines
            .iter()
            .filter(|l| l.kind == LineKind::Removed)
            .collect();
        let added: Vec<&DiffLine> = lines.iter().filter(|l| l.kind == LineKind::Added).collect();
        let same = lines.iter().filter(|l| l.kind == LineKind::Same).count();
        assert_eq!((removed.len(), added.len(), same), (10_000, 10_000, 10_000));
        assert!(removed.iter().all(|l| l.text.contains("sensor reading")));
        assert!(added.iter().all(|l| l.text.contains("CHANGED")));
        // Each removed line is directly followed by its replacement.
        for w in lines.windows(2) {
            if w[0].kind == LineKind::Removed {
                assert_eq!(w[1].kind, LineKind::Added);
                assert_eq!(w[0].text[..14], w[1].text[..14], "same row");
            }
        }
    }

    #[test]
    fn megabyte_payload_with_one_changed_line_diffs_exactly() {
        let (old, _) = megabyte_pair();
        let new = old.replacen("\"row\":   4321", "\"row\":  -4321", 1);
        let lines = line_diff(&old, &new);
        let changed: Vec<(LineKind, &str)> = lines
            .iter()
            .filter(|l| l.kind != LineKind::Same)
            .map(|l| (l.kind, l.text.as_str()))
            .collect();
        assert_eq!(changed.len(), 2, "{changed:?}");
        assert!(changed[0].1.contains("  4321") && changed[1].1.contains(" -4321"));
    }

    #[test]
    fn line_endings_do_not_count_as_changes() {
        let d = line_diff("a\r\nb\n", "a\nb");
        assert!(d.iter().all(|l| l.kind == LineKind::Same), "{d:?}");
    }
}
