//! `mqscope sub -F FORMAT`: mosquitto_sub's output format, token for token
//! (mosquitto_sub(1), "OUTPUT FORMAT"): `%` message fields with optional
//! `-`/`0` flags, field width and precision, `@` strftime time fields and
//! `\` escapes. Parsed once, then written per message.

use crate::model::protocol::Message;
use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

/// A parsed `-F` format string.
#[derive(Clone, Debug, PartialEq)]
pub struct Format(Vec<Piece>);

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Literal(Vec<u8>),
    /// `%[-][0][width][.precision]X`
    Field {
        conv: u8,
        spec: Spec,
    },
    /// `@X`: strftime's `%X` of the local time.
    Strftime(u8),
    /// `@N`: nanoseconds within the second.
    Nanos,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Spec {
    left: bool,
    zero: bool,
    width: usize,
    precision: Option<usize>,
}

/// The `%` conversions mosquitto_sub knows; `%j`/`%J` (JSON) are not
/// offered by mqscope.
const FIELDS: &[u8] = b"%ACDEFIlmPpqRrStUxX";

impl Format {
    /// Reads a format as mosquitto_sub does; a `%` conversion it does not
    /// know is an error here rather than silently printing nothing.
    pub fn parse(format: &str) -> Result<Format, String> {
        let f = format.as_bytes();
        let len = f.len();
        let mut pieces = Vec::new();
        let mut lit = Vec::new();
        let mut i = 0;
        let flush = |lit: &mut Vec<u8>, pieces: &mut Vec<Piece>| {
            if !lit.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(lit)));
            }
        };
        while i < len {
            match f[i] {
                b'%' => {
                    // The same scanning as mosquitto_sub's formatted_print.
                    let mut spec = Spec::default();
                    if i < len - 1 {
                        i += 1;
                        if f[i] == b'-' {
                            spec.left = true;
                            if i < len - 1 {
                                i += 1;
                            }
                        }
                        if f[i] == b'0' {
                            spec.zero = true;
                            if i < len - 1 {
                                i += 1;
                            }
                        }
                        while i < len - 1 && f[i].is_ascii_digit() {
                            spec.width = spec.width * 10 + usize::from(f[i] - b'0');
                            i += 1;
                        }
                        if f[i] == b'.' && i < len - 1 {
                            i += 1;
                            let mut p = 0;
                            while i < len - 1 && f[i].is_ascii_digit() {
                                p = p * 10 + usize::from(f[i] - b'0');
                                i += 1;
                            }
                            spec.precision = Some(p);
                        }
                        let conv = f[i];
                        if conv == b'j' || conv == b'J' {
                            return Err(
                                "-F: %j and %J (JSON output) are not supported by mqscope".into()
                            );
                        }
                        if !FIELDS.contains(&conv) {
                            return Err(format!(
                                "-F: unknown token '%{}' (see mosquitto_sub(1), OUTPUT FORMAT)",
                                char::from(conv)
                            ));
                        }
                        flush(&mut lit, &mut pieces);
                        pieces.push(Piece::Field { conv, spec });
                    } else {
                        return Err("-F: the format ends with a lone '%'".into());
                    }
                }
                b'@' => {
                    if i < len - 1 {
                        i += 1;
                        match f[i] {
                            b'@' => lit.push(b'@'),
                            b'N' => {
                                flush(&mut lit, &mut pieces);
                                pieces.push(Piece::Nanos);
                            }
                            c => {
                                flush(&mut lit, &mut pieces);
                                pieces.push(Piece::Strftime(c));
                            }
                        }
                    }
                }
                b'\\' => {
                    if i < len - 1 {
                        i += 1;
                        match f[i] {
                            b'\\' => lit.push(b'\\'),
                            b'0' => lit.push(0),
                            b'a' => lit.push(0x07),
                            b'e' => lit.push(0x1b),
                            b'n' => lit.push(b'\n'),
                            b'r' => lit.push(b'\r'),
                            b't' => lit.push(b'\t'),
                            b'v' => lit.push(0x0b),
                            c => {
                                return Err(format!(
                                    "-F: unknown escape '\\{}' (use \\\\ \\0 \\a \\e \\n \\r \\t \\v)",
                                    char::from(c)
                                ));
                            }
                        }
                    }
                }
                c => lit.push(c),
            }
            i += 1;
        }
        flush(&mut lit, &mut pieces);
        Ok(Format(pieces))
    }

    /// Writes one message (without the end of line mosquitto_sub adds).
    pub fn write(&self, m: &Message, out: &mut impl Write) -> io::Result<()> {
        let at = m.received;
        for piece in &self.0 {
            match piece {
                Piece::Literal(b) => out.write_all(b)?,
                Piece::Field { conv, spec } => field(*conv, *spec, m, at, out)?,
                Piece::Strftime(c) => {
                    out.write_all(strftime(&[b'%', *c], at).as_bytes())?;
                }
                Piece::Nanos => write!(out, "{:09}", nanos(at))?,
            }
        }
        Ok(())
    }
}

fn field(
    conv: u8,
    spec: Spec,
    m: &Message,
    at: SystemTime,
    out: &mut impl Write,
) -> io::Result<()> {
    let props = m.props.as_deref();
    let int = |out: &mut dyn Write, v: Option<i64>| -> io::Result<()> {
        match v {
            Some(v) => print_int(out, v, spec),
            None => blank(out, if spec.zero { b'0' } else { b' ' }, spec.width),
        }
    };
    match conv {
        b'%' => out.write_all(b"%"),
        b'A' => int(out, props.and_then(|p| p.topic_alias).map(i64::from)),
        b'C' => match props.and_then(|p| p.content_type.as_deref()) {
            Some(s) => print_str(out, s.as_bytes(), spec),
            None => blank(out, b' ', spec.width),
        },
        b'D' => match props.and_then(|p| p.correlation_data.as_deref()) {
            Some(d) => out.write_all(d),
            None => Ok(()),
        },
        b'E' => int(
            out,
            props.and_then(|p| p.message_expiry_interval).map(i64::from),
        ),
        b'F' => int(
            out,
            props
                .and_then(|p| p.payload_format_indicator)
                .map(i64::from),
        ),
        b'I' => print_str(out, strftime(b"%FT%T%z", at).as_bytes(), spec),
        b'l' => int(out, Some(m.payload.len() as i64)),
        b'm' => int(out, Some(i64::from(m.pkid))),
        b'P' => {
            let Some(p) = props else { return Ok(()) };
            for (i, (k, v)) in p.user_property.iter().enumerate() {
                if i > 0 {
                    out.write_all(b" ")?;
                }
                write!(out, "{k}:{v}")?;
            }
            Ok(())
        }
        b'p' => payload(out, &m.payload, Hex::No, spec),
        b'x' => payload(out, &m.payload, Hex::Lower, spec),
        b'X' => payload(out, &m.payload, Hex::Upper, spec),
        b'q' => write!(out, "{}", m.qos.as_u8()),
        b'R' => match props.and_then(|p| p.response_topic.as_deref()) {
            Some(s) => print_str(out, s.as_bytes(), spec),
            None => Ok(()),
        },
        b'r' => out.write_all(if m.retain { b"1" } else { b"0" }),
        // mosquitto_sub prints the first identifier only.
        b'S' => int(
            out,
            props
                .and_then(|p| p.subscription_identifier.first().copied())
                .map(|i| i as i64),
        ),
        b't' => print_str(out, m.topic.as_bytes(), spec),
        b'U' => {
            let secs = at
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            write!(out, "{secs}.{:09}", nanos(at))
        }
        _ => Ok(()),
    }
}

fn blank(out: &mut dyn Write, pad: u8, width: usize) -> io::Result<()> {
    for _ in 0..width {
        out.write_all(&[pad])?;
    }
    Ok(())
}

/// printf's `%d`, `%-*d`, `%0*d`, `%*d` as mosquitto_sub chooses them.
fn print_int(out: &mut dyn Write, v: i64, spec: Spec) -> io::Result<()> {
    let w = spec.width;
    if w == 0 {
        write!(out, "{v}")
    } else if spec.left {
        write!(out, "{v:<w$}")
    } else if spec.zero {
        write!(out, "{v:0w$}")
    } else {
        write!(out, "{v:>w$}")
    }
}

/// printf's `%*.*s` on bytes: precision cuts, width pads with spaces.
fn print_str(out: &mut dyn Write, s: &[u8], spec: Spec) -> io::Result<()> {
    let s = match spec.precision {
        Some(p) => &s[..p.min(s.len())],
        None => s,
    };
    let pad = spec.width.saturating_sub(s.len());
    if !spec.left {
        blank(out, b' ', pad)?;
    }
    out.write_all(s)?;
    if spec.left {
        blank(out, b' ', pad)?;
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq)]
enum Hex {
    No,
    Lower,
    Upper,
}

/// mosquitto_sub's write_payload: a width also *cuts* the payload (to the
/// width in characters; for hex, to half as many bytes).
fn payload(out: &mut dyn Write, payload: &[u8], hex: Hex, spec: Spec) -> io::Result<()> {
    let mut n = payload.len();
    let w = spec.width;
    let padlen = if w > 0 {
        n = n.min(w);
        if hex == Hex::No {
            w - n
        } else {
            n /= 2;
            w - n * 2
        }
    } else {
        0
    };
    let pad = if spec.zero { b'0' } else { b' ' };
    if !spec.left {
        blank(out, pad, padlen)?;
    }
    let bytes = &payload[..n];
    match hex {
        Hex::No => out.write_all(bytes)?,
        Hex::Lower => {
            for b in bytes {
                write!(out, "{b:02x}")?;
            }
        }
        Hex::Upper => {
            for b in bytes {
                write!(out, "{b:02X}")?;
            }
        }
    }
    if spec.left {
        blank(out, b' ', padlen)?;
    }
    Ok(())
}

fn nanos(at: SystemTime) -> u32 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// The C library's strftime on the local time of `at`, as mosquitto_sub
/// uses it (so `@X` means what it means there).
fn strftime(format: &[u8], at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let Ok(t) = libc::time_t::try_from(secs) else {
        return String::new();
    };
    let Ok(fmt) = std::ffi::CString::new(format) else {
        return String::new();
    };
    // SAFETY: `tm` is plain data filled by localtime_r; strftime writes at
    // most `buf.len()` bytes and returns how many.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return String::new();
        }
        let mut buf = [0u8; 128];
        let n = libc::strftime(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr(), &tm);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::protocol::{Properties, Qos};
    use bytes::Bytes;

    fn msg() -> Message {
        Message {
            topic: "a/b".into(),
            payload: Bytes::from_static(b"hello"),
            qos: Qos::AtLeastOnce,
            retain: true,
            pkid: 7,
            props: Some(Box::new(Properties {
                content_type: Some("text/plain".into()),
                user_property: vec![("k".into(), "1".into()), ("k".into(), "2".into())],
                subscription_identifier: vec![3, 9],
                ..Properties::default()
            })),
            ..Message::default()
        }
    }

    fn out(format: &str, m: &Message) -> String {
        let mut v = Vec::new();
        Format::parse(format)
            .unwrap_or_else(|e| panic!("{e}"))
            .write(m, &mut v)
            .unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&v).into_owned()
    }

    #[test]
    fn message_fields_print_as_mosquitto_sub_prints_them() {
        assert_eq!(
            out("%t %p %q %r %l %m %x %X %%", &msg()),
            "a/b hello 1 1 5 7 68656c6c6f 68656C6C6F %"
        );
    }

    #[test]
    fn v5_properties_print_when_present_and_blank_when_not() {
        assert_eq!(
            out("%C|%P|%S|%E|%R|%A|%D|%F", &msg()),
            "text/plain|k:1 k:2|3|||||"
        );
        assert_eq!(out("[%5E]", &msg()), "[     ]");
        assert_eq!(out("[%05S]", &msg()), "[00003]");
    }

    #[test]
    fn width_precision_and_alignment_follow_printf() {
        assert_eq!(
            out("[%6t][%-6t][%.1t][%4.2t]", &msg()),
            "[   a/b][a/b   ][a][  a/]"
        );
        assert_eq!(out("[%04l][%-4l][%4l]", &msg()), "[0005][5   ][   5]");
    }

    #[test]
    fn a_payload_width_also_cuts_the_payload() {
        assert_eq!(out("[%3p][%8p][%-7p]", &msg()), "[hel][   hello][hello  ]");
        assert_eq!(out("[%4x]", &msg()), "[6865]");
    }

    #[test]
    fn escapes_and_literal_at_signs() {
        assert_eq!(out("%t\\t%p\\n\\\\@@", &msg()), "a/b\thello\n\\@");
    }

    #[test]
    fn unknown_tokens_are_refused_in_words() {
        assert!(Format::parse("%k").unwrap_err().contains("'%k'"));
        assert!(Format::parse("%j").unwrap_err().contains("JSON"));
        assert!(Format::parse("50%").is_err());
    }

    #[test]
    fn unix_time_has_nanoseconds() {
        let m = Message {
            received: UNIX_EPOCH + std::time::Duration::new(1_470_818_943, 786_368_637),
            ..msg()
        };
        assert_eq!(out("%U", &m), "1470818943.786368637");
        assert_eq!(out("@N", &m), "786368637");
    }
}
