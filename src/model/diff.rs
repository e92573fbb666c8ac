//! Differences between two payloads of a topic's history: by JSON path when
//! both are JSON objects/arrays, line by line otherwise.

use crate::model::payload::{PayloadKind, detect};
use serde_json::Value;

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

/// Largest LCS table (cells) computed; beyond it the differing middle is
/// shown as all removed then all added, which is still a correct diff.
const MAX_LCS_CELLS: usize = 4_000_000;

/// A line diff: common prefix and suffix, then an LCS over the middle.
pub fn line_diff(old: &str, new: &str) -> Vec<DiffLine> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let suffix = a[prefix..]
        .iter()
        .rev()
        .zip(b[prefix..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let line = |kind, text: &str| DiffLine {
        kind,
        text: text.to_string(),
    };
    let mut out: Vec<DiffLine> = a[..prefix]
        .iter()
        .map(|t| line(LineKind::Same, t))
        .collect();
    let mid_a = &a[prefix..a.len() - suffix];
    let mid_b = &b[prefix..b.len() - suffix];
    let (n, m) = (mid_a.len(), mid_b.len());
    if n.saturating_mul(m) > MAX_LCS_CELLS {
        out.extend(mid_a.iter().map(|t| line(LineKind::Removed, t)));
        out.extend(mid_b.iter().map(|t| line(LineKind::Added, t)));
    } else {
        // lcs[i][j] = LCS length of mid_a[i..] and mid_b[j..].
        let width = m + 1;
        let mut lcs = vec![0u32; (n + 1) * width];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                lcs[i * width + j] = if mid_a[i] == mid_b[j] {
                    lcs[(i + 1) * width + j + 1] + 1
                } else {
                    lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && mid_a[i] == mid_b[j] {
                out.push(line(LineKind::Same, mid_a[i]));
                i += 1;
                j += 1;
            } else if i < n && (j == m || lcs[(i + 1) * width + j] >= lcs[i * width + j + 1]) {
                // On a tie, removed lines come before added ones, as in
                // `diff -u`.
                out.push(line(LineKind::Removed, mid_a[i]));
                i += 1;
            } else {
                out.push(line(LineKind::Added, mid_b[j]));
                j += 1;
            }
        }
    }
    out.extend(
        a[a.len() - suffix..]
            .iter()
            .map(|t| line(LineKind::Same, t)),
    );
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
}
