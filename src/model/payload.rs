//! Payload decoding: what a payload is (JSON, number, text, binary) and the
//! views the GUI shows of it (pretty JSON with colour classes, hex dump rows,
//! base64, a one-line preview, numeric values for plotting).
//!
//! Everything here is a pure function of the payload bytes. Functions that a
//! view calls every frame on a possibly huge payload (`hex_line`, `preview`,
//! `text_prefix`) only touch the bytes they show.

use std::fmt::Write as _;

/// The best way to show a payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadKind {
    Empty,
    /// A JSON object or array (scalars are shown as `Number` or `Text`).
    Json,
    /// The whole payload is one number (`23.5`, ` -4 `, `1e3`).
    Number,
    /// Valid UTF-8 without control characters other than tab/CR/LF.
    Text,
    /// Anything else: invalid UTF-8, NULs, control bytes. Never shown as
    /// text; the views use the hex dump or base64.
    Binary,
}

impl PayloadKind {
    pub fn label(self) -> &'static str {
        match self {
            PayloadKind::Empty => "empty",
            PayloadKind::Json => "JSON",
            PayloadKind::Number => "number",
            PayloadKind::Text => "text",
            PayloadKind::Binary => "binary",
        }
    }
}

/// Decides how to show `payload`. Validates JSON fully, so on a very large
/// payload the caller should compute it once and cache it.
pub fn detect(payload: &[u8]) -> PayloadKind {
    if payload.is_empty() {
        return PayloadKind::Empty;
    }
    let Ok(text) = std::str::from_utf8(payload) else {
        return PayloadKind::Binary;
    };
    if text.chars().any(is_binary_char) {
        return PayloadKind::Binary;
    }
    let trimmed = text.trim();
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && serde_json::from_str::<serde::de::IgnoredAny>(trimmed).is_ok()
    {
        return PayloadKind::Json;
    }
    if parse_number(trimmed).is_some() {
        return PayloadKind::Number;
    }
    PayloadKind::Text
}

fn is_binary_char(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// A finite number written as plain decimal text (`inf`/`NaN` are text).
fn parse_number(text: &str) -> Option<f64> {
    let text = text.trim();
    if text.is_empty()
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
    {
        return None;
    }
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// A one-line preview of at most `max_chars` characters for the tree row.
/// Reads only the start of the payload.
pub fn preview(payload: &[u8], max_chars: usize) -> String {
    if payload.is_empty() {
        return String::new();
    }
    // A char is at most 4 bytes: this prefix is enough for max_chars chars.
    let prefix = &payload[..payload.len().min(max_chars.saturating_mul(4).max(4))];
    let valid = match std::str::from_utf8(prefix) {
        Ok(s) => s,
        Err(e) => {
            // An incomplete char at the cut is fine; a real error is binary.
            if e.error_len().is_some() {
                return binary_preview(payload);
            }
            match std::str::from_utf8(&prefix[..e.valid_up_to()]) {
                Ok(s) => s,
                Err(_) => return binary_preview(payload),
            }
        }
    };
    if valid.chars().any(is_binary_char) {
        return binary_preview(payload);
    }
    let mut out = String::with_capacity(max_chars.min(valid.len()) + 3);
    let mut count = 0;
    let mut last_space = false;
    for c in valid.chars() {
        // Collapse line breaks and runs of blanks so the row stays one line.
        let c = if c.is_whitespace() { ' ' } else { c };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        if count == max_chars {
            out.push('…');
            return out;
        }
        out.push(c);
        count += 1;
    }
    if valid.len() < payload.len() {
        out.push('…');
    }
    out
}

fn binary_preview(payload: &[u8]) -> String {
    let mut out = format!("binary, {} bytes:", payload.len());
    for b in payload.iter().take(8) {
        let _ = write!(out, " {b:02x}");
    }
    if payload.len() > 8 {
        out.push_str(" …");
    }
    out
}

/// The start of a text payload, for a text view that shows at most
/// `max_bytes`: "showing `shown` of `total` bytes" when `shown < total`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextPrefix {
    pub text: String,
    pub shown: usize,
    pub total: usize,
}

impl TextPrefix {
    pub fn is_partial(&self) -> bool {
        self.shown < self.total
    }

    /// The notice the view shows above a partial text, or `None`.
    pub fn notice(&self) -> Option<String> {
        self.is_partial()
            .then(|| format!("showing {} of {} bytes", self.shown, self.total))
    }
}

/// Up to `max_bytes` of `payload` as text, cut at a character boundary.
/// Invalid UTF-8 is replaced by U+FFFD (call it on `Text`/`Json` payloads).
pub fn text_prefix(payload: &[u8], max_bytes: usize) -> TextPrefix {
    let mut cut = payload.len().min(max_bytes);
    if cut < payload.len() {
        // Step back over UTF-8 continuation bytes so no char is split.
        while cut > 0 && (payload[cut] & 0xC0) == 0x80 {
            cut -= 1;
        }
    }
    TextPrefix {
        text: String::from_utf8_lossy(&payload[..cut]).into_owned(),
        shown: cut,
        total: payload.len(),
    }
}

/// How the GUI colours a piece of pretty-printed JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenClass {
    Key,
    String,
    Number,
    /// `true`, `false`, `null`.
    Literal,
    /// Braces, brackets, `:` and `,`.
    Punct,
    /// Line breaks and indentation.
    Whitespace,
}

/// A byte range of [`PrettyJson::text`] and its colour class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    pub range: std::ops::Range<usize>,
    pub class: TokenClass,
}

/// Pretty-printed JSON; the spans cover `text` end to end, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrettyJson {
    pub text: String,
    pub spans: Vec<Span>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok {
    Open(u8),
    Close(u8),
    Colon,
    Comma,
    Str,
    Num,
    Lit,
}

/// Splits valid JSON text into tokens (whitespace dropped).
fn lex(text: &str) -> Vec<(Tok, &str)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let tok = match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b @ (b'{' | b'[') => {
                i += 1;
                Tok::Open(b)
            }
            b @ (b'}' | b']') => {
                i += 1;
                Tok::Close(b)
            }
            b':' => {
                i += 1;
                Tok::Colon
            }
            b',' => {
                i += 1;
                Tok::Comma
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(bytes.len());
                Tok::Str
            }
            b if b.is_ascii_alphabetic() => {
                while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
                    i += 1;
                }
                Tok::Lit
            }
            _ => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_digit()
                        || matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E'))
                {
                    i += 1;
                }
                if i == start {
                    // Not JSON after all (callers validate first); skip the
                    // byte rather than loop forever.
                    i += text[start..].chars().next().map_or(1, char::len_utf8);
                    continue;
                }
                Tok::Num
            }
        };
        out.push((tok, &text[start..i]));
    }
    out
}

/// Pretty-prints a JSON payload with two-space indentation, keeping the
/// key order and the number spelling of the original. `None` if the payload
/// is not valid JSON.
pub fn pretty_json(payload: &[u8]) -> Option<PrettyJson> {
    let text = std::str::from_utf8(payload).ok()?;
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    let tokens = lex(text);
    let mut out = PrettyJson {
        text: String::with_capacity(text.len() * 2),
        spans: Vec::with_capacity(tokens.len() * 2),
    };
    let mut depth = 0usize;
    let mut iter = tokens.iter().peekable();
    while let Some(&(tok, s)) = iter.next() {
        match tok {
            Tok::Open(b) => {
                let close = if b == b'{' { b'}' } else { b']' };
                if matches!(iter.peek(), Some((Tok::Close(c), _)) if *c == close) {
                    iter.next();
                    let empty = if b == b'{' { "{}" } else { "[]" };
                    out.push(empty, TokenClass::Punct);
                } else {
                    out.push(s, TokenClass::Punct);
                    depth += 1;
                    out.newline(depth);
                }
            }
            Tok::Close(_) => {
                depth = depth.saturating_sub(1);
                out.newline(depth);
                out.push(s, TokenClass::Punct);
            }
            Tok::Colon => out.push(": ", TokenClass::Punct),
            Tok::Comma => {
                out.push(",", TokenClass::Punct);
                out.newline(depth);
            }
            Tok::Str => {
                let class = if matches!(iter.peek(), Some((Tok::Colon, _))) {
                    TokenClass::Key
                } else {
                    TokenClass::String
                };
                out.push(s, class);
            }
            Tok::Num => out.push(s, TokenClass::Number),
            Tok::Lit => out.push(s, TokenClass::Literal),
        }
    }
    Some(out)
}

impl PrettyJson {
    fn push(&mut self, s: &str, class: TokenClass) {
        let start = self.text.len();
        self.text.push_str(s);
        self.spans.push(Span {
            range: start..self.text.len(),
            class,
        });
    }

    fn newline(&mut self, depth: usize) {
        let start = self.text.len();
        self.text.push('\n');
        for _ in 0..depth {
            self.text.push_str("  ");
        }
        self.spans.push(Span {
            range: start..self.text.len(),
            class: TokenClass::Whitespace,
        });
    }
}

/// Bytes per hex dump row.
pub const HEX_ROW_BYTES: usize = 16;

/// Number of hex dump rows for a payload of `len` bytes.
pub fn hex_rows(len: usize) -> usize {
    len.div_ceil(HEX_ROW_BYTES)
}

/// One `hexdump -C` style row: offset, 16 hex bytes in two groups of eight,
/// printable ASCII (`.` for the rest). Empty if `row` is past the end. Only
/// this row's bytes are read, so a view renders just the visible rows.
pub fn hex_line(payload: &[u8], row: usize) -> String {
    let start = row.saturating_mul(HEX_ROW_BYTES);
    if start >= payload.len() {
        return String::new();
    }
    let bytes = &payload[start..payload.len().min(start + HEX_ROW_BYTES)];
    let mut out = String::with_capacity(80);
    let _ = write!(out, "{start:08x}  ");
    for i in 0..HEX_ROW_BYTES {
        if i == 8 {
            out.push(' ');
        }
        match bytes.get(i) {
            Some(b) => {
                let _ = write!(out, "{b:02x} ");
            }
            None => out.push_str("   "),
        }
    }
    out.push_str(" |");
    out.extend(bytes.iter().map(|&b| {
        if b.is_ascii_graphic() || b == b' ' {
            b as char
        } else {
            '.'
        }
    }));
    out.push('|');
    out
}

/// Standard base64 (RFC 4648, with padding).
pub fn base64(payload: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(payload.len().div_ceil(3) * 4);
    for chunk in payload.chunks(3) {
        let n = match *chunk {
            [a, b, c] => (u32::from(a) << 16) | (u32::from(b) << 8) | u32::from(c),
            [a, b] => (u32::from(a) << 16) | (u32::from(b) << 8),
            [a] => u32::from(a) << 16,
            _ => continue,
        };
        let sextet = |shift: u32| ALPHABET[((n >> shift) & 63) as usize] as char;
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

/// One step of a JSON field path such as `a.b[0]` or `metrics[name=t]`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
    /// `[KEY=VALUE]`: the first array element that is an object whose
    /// field KEY is the string VALUE (a Sparkplug metric by its name, which
    /// stays put when a data message carries only some metrics).
    Named(&'a str, &'a str),
}

fn parse_path(path: &str) -> Option<Vec<Step<'_>>> {
    let mut steps = Vec::new();
    let mut rest = path.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let close = after.find(']')?;
            let inside = &after[..close];
            steps.push(match inside.split_once('=') {
                Some((key, value)) if !key.is_empty() => Step::Named(key, value),
                Some(_) => return None,
                None => Step::Index(inside.trim().parse().ok()?),
            });
            rest = &after[close + 1..];
        } else {
            let rest_key = rest.strip_prefix('.').unwrap_or(rest);
            let end = rest_key.find(['.', '[']).unwrap_or(rest_key.len());
            if end == 0 {
                return None;
            }
            steps.push(Step::Key(&rest_key[..end]));
            rest = &rest_key[end..];
        }
    }
    Some(steps)
}

/// A numeric value for plotting. With `path == None` the whole payload must
/// be a number; otherwise `path` (`speed`, `a.b[0]`, `[2].v`,
/// `list[name=x].v`) selects a JSON field that is a number or a string
/// holding a number.
pub fn extract_number(payload: &[u8], path: Option<&str>) -> Option<f64> {
    let text = std::str::from_utf8(payload).ok()?;
    let Some(path) = path else {
        return parse_number(text);
    };
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    number_at(&value, path)
}

/// The value at `path` ([`extract_number`] syntax), whatever its type.
pub fn value_at<'v>(value: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
    let steps = parse_path(path)?;
    let mut cur = value;
    for step in steps {
        cur = match step {
            Step::Key(k) => cur.as_object()?.get(k)?,
            Step::Index(i) => cur.as_array()?.get(i)?,
            Step::Named(k, v) => cur
                .as_array()?
                .iter()
                .find(|item| item.get(k).and_then(serde_json::Value::as_str) == Some(v))?,
        };
    }
    Some(cur)
}

/// The number at `path` ([`extract_number`] syntax) of an already parsed or
/// decoded tree (a MessagePack, CBOR, Protobuf or Sparkplug payload).
pub fn number_at(value: &serde_json::Value, path: &str) -> Option<f64> {
    match value_at(value, path)? {
        serde_json::Value::Number(n) => n.as_f64().filter(|v| v.is_finite()),
        serde_json::Value::String(s) => parse_number(s),
        _ => None,
    }
}

/// Most paths [`numeric_paths`] lists, so a huge array cannot flood the
/// picker.
pub const MAX_NUMERIC_PATHS: usize = 256;

/// The paths of the numeric fields of a JSON payload, for the plot's field
/// picker, in [`extract_number`] syntax. Keys that the path syntax cannot
/// spell (containing `.`, `[` or `]`, or empty) are left out.
pub fn numeric_paths(payload: &[u8]) -> Vec<String> {
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(value) => numeric_paths_of(&value),
        Err(_) => Vec::new(),
    }
}

/// [`numeric_paths`] of an already parsed or decoded tree. Array elements
/// that are objects with a unique `name` string are spelled `[name=...]`,
/// so a metric keeps its path when others come and go.
pub fn numeric_paths_of(value: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut path = String::new();
    collect_numeric(value, &mut path, &mut out);
    out
}

fn spellable(key: &str) -> bool {
    !key.is_empty() && !key.contains(['.', '[', ']', '='])
}

fn collect_numeric(value: &serde_json::Value, path: &mut String, out: &mut Vec<String>) {
    if out.len() >= MAX_NUMERIC_PATHS {
        return;
    }
    match value {
        serde_json::Value::Number(_) if !path.is_empty() => out.push(path.clone()),
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                if !spellable(key) {
                    continue;
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                collect_numeric(v, path, out);
                path.truncate(len);
            }
        }
        serde_json::Value::Array(items) => {
            fn name_of(v: &serde_json::Value) -> Option<&str> {
                v.get("name")
                    .and_then(serde_json::Value::as_str)
                    .filter(|n| !n.contains(']'))
            }
            for (i, v) in items.iter().enumerate() {
                let len = path.len();
                match name_of(v) {
                    Some(name)
                        if items.iter().filter(|o| name_of(o) == Some(name)).count() == 1 =>
                    {
                        let _ = write!(path, "[name={name}]");
                    }
                    _ => {
                        let _ = write!(path, "[{i}]");
                    }
                }
                collect_numeric(v, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_object_detected() {
        assert_eq!(detect(br#"{"a": 1, "b": [true, null]}"#), PayloadKind::Json);
        assert_eq!(detect(b"  {}\n"), PayloadKind::Json);
    }

    #[test]
    fn json_array_detected() {
        assert_eq!(detect(b"[1, 2, 3]"), PayloadKind::Json);
    }

    #[test]
    fn broken_json_is_text() {
        assert_eq!(detect(br#"{"a": 1"#), PayloadKind::Text);
    }

    #[test]
    fn bare_number_detected_as_number() {
        assert_eq!(detect(b"23.5"), PayloadKind::Number);
        assert_eq!(detect(b" -4\n"), PayloadKind::Number);
        assert_eq!(detect(b"1e3"), PayloadKind::Number);
        assert_eq!(detect(b"inf"), PayloadKind::Text);
        assert_eq!(detect(b"NaN"), PayloadKind::Text);
    }

    #[test]
    fn utf8_text_detected() {
        assert_eq!(
            detect("héllo wörld\nline 2\t!".as_bytes()),
            PayloadKind::Text
        );
        assert_eq!(detect(b"true"), PayloadKind::Text);
    }

    #[test]
    fn binary_with_nul_or_invalid_utf8_detected() {
        assert_eq!(detect(b"abc\0def"), PayloadKind::Binary);
        assert_eq!(detect(&[0xff, 0xfe, 0x41]), PayloadKind::Binary);
        assert_eq!(detect(&[0x1b, b'[', b'0', b'm']), PayloadKind::Binary);
        assert_eq!(detect(b""), PayloadKind::Empty);
    }

    #[test]
    fn preview_is_one_line_and_cut_with_ellipsis() {
        assert_eq!(preview(b"{\n  \"a\": 1\n}", 40), "{ \"a\": 1 }");
        assert_eq!(preview(b"abcdefghij", 4), "abcd…");
        assert_eq!(preview(b"abcd", 4), "abcd");
    }

    #[test]
    fn preview_of_binary_shows_size_and_hex_not_garbage() {
        let p = preview(&[0, 1, 2, 0xff, 4, 5, 6, 7, 8, 9], 40);
        assert_eq!(p, "binary, 10 bytes: 00 01 02 ff 04 05 06 07 …");
    }

    #[test]
    fn text_prefix_reports_shown_of_total_and_keeps_chars_whole() {
        let text = "aé".repeat(10); // 30 bytes
        let prefix = text_prefix(text.as_bytes(), 5);
        // "aéa" is 4 bytes; the next 'é' would cross the 5 byte limit.
        assert_eq!(prefix.text, "aéa");
        assert_eq!(prefix.shown, 4);
        assert_eq!(prefix.notice().as_deref(), Some("showing 4 of 30 bytes"));
        assert!(text_prefix(b"short", 100).notice().is_none());
    }

    #[test]
    fn pretty_json_indents_and_keeps_key_order() {
        let pretty = pretty_json(br#"{"z":1,"a":[true,null,"s"],"e":{}}"#).expect("valid json");
        assert_eq!(
            pretty.text,
            "{\n  \"z\": 1,\n  \"a\": [\n    true,\n    null,\n    \"s\"\n  ],\n  \"e\": {}\n}"
        );
    }

    #[test]
    fn pretty_json_spans_classify_tokens_and_cover_text() {
        let pretty = pretty_json(br#"{"k":"v","n":-1.5e2,"b":false}"#).expect("valid json");
        let class_of = |s: &str| {
            pretty
                .spans
                .iter()
                .find(|sp| &pretty.text[sp.range.clone()] == s)
                .map(|sp| sp.class)
        };
        assert_eq!(class_of("\"k\""), Some(TokenClass::Key));
        assert_eq!(class_of("\"v\""), Some(TokenClass::String));
        assert_eq!(class_of("-1.5e2"), Some(TokenClass::Number));
        assert_eq!(class_of("false"), Some(TokenClass::Literal));
        assert_eq!(class_of("{"), Some(TokenClass::Punct));
        let mut end = 0;
        for span in &pretty.spans {
            assert_eq!(span.range.start, end, "spans must tile the text");
            end = span.range.end;
        }
        assert_eq!(end, pretty.text.len());
        assert!(pretty_json(b"{broken").is_none());
    }

    #[test]
    fn pretty_json_keeps_escaped_quotes_in_strings() {
        let pretty = pretty_json(br#"{"a":"say \"hi\", ok"}"#).expect("valid json");
        assert_eq!(pretty.text, "{\n  \"a\": \"say \\\"hi\\\", ok\"\n}");
    }

    #[test]
    fn hex_line_format_matches_hexdump_c() {
        let payload = b"Hello, world!\n\x00\xffABC";
        assert_eq!(hex_rows(payload.len()), 2);
        assert_eq!(
            hex_line(payload, 0),
            "00000000  48 65 6c 6c 6f 2c 20 77  6f 72 6c 64 21 0a 00 ff  |Hello, world!...|"
        );
        assert_eq!(
            hex_line(payload, 1),
            "00000010  41 42 43                                          |ABC|"
        );
        assert_eq!(hex_line(payload, 2), "");
        assert_eq!(hex_rows(0), 0);
        assert_eq!(hex_rows(32), 2);
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn number_extracted_from_plain_payload() {
        assert_eq!(extract_number(b" 21.5\n", None), Some(21.5));
        assert_eq!(extract_number(b"warm", None), None);
        assert_eq!(extract_number(br#"{"t":1}"#, None), None);
    }

    #[test]
    fn number_extracted_from_json_path() {
        let payload = br#"{"speed": 12, "a": {"b": [3.5, "7"]}, "list": [{"v": -1}]}"#;
        assert_eq!(extract_number(payload, Some("speed")), Some(12.0));
        assert_eq!(extract_number(payload, Some("a.b[0]")), Some(3.5));
        assert_eq!(extract_number(payload, Some("a.b[1]")), Some(7.0));
        assert_eq!(extract_number(payload, Some("list[0].v")), Some(-1.0));
        assert_eq!(extract_number(payload, Some("a.b[9]")), None);
        assert_eq!(extract_number(payload, Some("missing")), None);
        assert_eq!(extract_number(payload, Some("a")), None);
        assert_eq!(extract_number(b"[4, 5]", Some("[1]")), Some(5.0));
        assert_eq!(extract_number(payload, Some("a..b")), None);
    }

    #[test]
    fn numeric_paths_list_number_fields_for_the_picker() {
        let payload = br#"{"speed": 12, "name": "x", "a": {"b": [3.5, true]}, "odd.key": 1}"#;
        let mut paths = numeric_paths(payload);
        paths.sort();
        assert_eq!(paths, vec!["a.b[0]".to_string(), "speed".to_string()]);
        for path in &paths {
            assert!(extract_number(payload, Some(path)).is_some(), "{path}");
        }
        assert!(numeric_paths(b"42").is_empty());
    }

    #[test]
    fn named_array_elements_keep_their_path_when_others_come_and_go() {
        let birth = br#"{"metrics": [{"name": "a", "value": 1}, {"name": "temp", "value": 20.5}]}"#;
        let data = br#"{"metrics": [{"name": "temp", "value": 21}]}"#;
        let paths = numeric_paths(birth);
        assert!(
            paths.contains(&"metrics[name=temp].value".to_string()),
            "{paths:?}"
        );
        assert_eq!(
            extract_number(birth, Some("metrics[name=temp].value")),
            Some(20.5)
        );
        assert_eq!(
            extract_number(data, Some("metrics[name=temp].value")),
            Some(21.0)
        );
        assert_eq!(extract_number(data, Some("metrics[name=a].value")), None);
        assert_eq!(extract_number(data, Some("metrics[=a].value")), None);
        // Names that repeat are spelled by index.
        let twins = br#"[{"name": "x", "v": 1}, {"name": "x", "v": 2}]"#;
        assert_eq!(
            numeric_paths(twins),
            vec!["[0].v".to_string(), "[1].v".to_string()]
        );
    }
}
