//! Binary payload decoders: Sparkplug B, Protobuf with a user's `.proto`,
//! MessagePack and CBOR, each a pure function from payload bytes to a
//! JSON-like tree (`serde_json::Value`) or a clear error.
//!
//! The trees share a few conventions so that views, the CLI and plots can
//! treat them alike: binary data is `{"$binary": "<base64>"}`, numbers that
//! JSON cannot hold (NaN, ±inf, integers past 64 bits) are strings, and map
//! keys that are not strings are written as compact JSON text. Decoding is
//! bounded: nesting deeper than [`MAX_DEPTH`] is an error, and no decoder
//! allocates more than the payload's size suggests.
//!
//! Automatic detection is only used where it is safe ([`auto_format`]):
//! Sparkplug by its topic namespace, MessagePack and CBOR only when the MQTT 5
//! content type says so. Random bytes are valid MessagePack surprisingly
//! often, so they are never guessed.

pub mod cbor;
pub mod msgpack;
pub mod protobuf;
pub mod sparkplug;

pub use protobuf::ProtoSchema;
pub use sparkplug::{SparkplugAliases, SparkplugTopic};

use crate::model::payload::{self, PayloadKind};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Deepest nesting of a decoded tree. Deeper payloads are refused: the
/// JSON view and `serde_json` stop at 128 levels, and a hostile payload
/// must not exhaust the stack.
pub const MAX_DEPTH: usize = 100;

/// Why a payload could not be decoded, said for a person.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

impl DecodeError {
    pub fn new(msg: impl Into<String>) -> DecodeError {
        DecodeError(msg.into())
    }
}

/// A binary format with a decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Sparkplug,
    MsgPack,
    Cbor,
    Protobuf,
}

impl Format {
    pub fn label(self) -> &'static str {
        match self {
            Format::Sparkplug => "Sparkplug B",
            Format::MsgPack => "MessagePack",
            Format::Cbor => "CBOR",
            Format::Protobuf => "Protobuf",
        }
    }
}

/// The format that can safely be assumed for a message without asking the
/// user: Sparkplug B on its topic namespace, MessagePack or CBOR when the
/// MQTT 5 content type names them. `None`: show the payload as it is.
pub fn auto_format(topic: &str, content_type: Option<&str>) -> Option<Format> {
    if let Some(ct) = content_type {
        // `application/cbor; foo=bar`: the parameters do not matter here.
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/msgpack" | "application/x-msgpack" | "application/vnd.msgpack" => {
                return Some(Format::MsgPack);
            }
            "application/cbor" => return Some(Format::Cbor),
            _ => {}
        }
    }
    SparkplugTopic::parse(topic)
        .filter(|t| t.kind.is_protobuf())
        .map(|_| Format::Sparkplug)
}

/// What the user asked to decode with (`sub --decode`, the inspector's
/// view choice).
#[derive(Clone, Debug)]
pub enum DecodeChoice {
    /// [`auto_format`], else the payload as it is.
    Auto,
    Format(Format),
    Protobuf(Arc<ProtoSchema>),
}

impl DecodeChoice {
    /// Reads `auto`, `sparkplug`, `msgpack`, `cbor` or
    /// `protobuf:FILE.proto:package.Message` (compiling the file).
    pub fn parse(spec: &str) -> Result<DecodeChoice, DecodeError> {
        match spec {
            "auto" => Ok(DecodeChoice::Auto),
            "sparkplug" | "sparkplugb" | "spb" => Ok(DecodeChoice::Format(Format::Sparkplug)),
            "msgpack" | "messagepack" => Ok(DecodeChoice::Format(Format::MsgPack)),
            "cbor" => Ok(DecodeChoice::Format(Format::Cbor)),
            _ => {
                let Some(rest) = spec.strip_prefix("protobuf:") else {
                    return Err(DecodeError::new(format!(
                        "unknown decoder '{spec}': use auto, sparkplug, msgpack, cbor or protobuf:FILE.proto:Message"
                    )));
                };
                // The message name has no ':', the path may (rarely).
                let Some((file, message)) = rest.rsplit_once(':') else {
                    return Err(DecodeError::new(format!(
                        "'{spec}': protobuf needs a file and a message type: protobuf:FILE.proto:package.Message"
                    )));
                };
                Ok(DecodeChoice::Protobuf(Arc::new(ProtoSchema::load(
                    std::path::Path::new(file),
                    message,
                )?)))
            }
        }
    }
}

/// Decodes one message as `choice` says. `aliases` remembers Sparkplug
/// births so later data messages get their metric names; feed it every
/// message in the order received. With `Auto` and no safe format, the
/// payload itself is returned as JSON ([`as_json`]).
pub fn decode(
    choice: &DecodeChoice,
    topic: &str,
    content_type: Option<&str>,
    payload: &[u8],
    aliases: &mut SparkplugAliases,
) -> Result<Value, DecodeError> {
    let format = match choice {
        DecodeChoice::Protobuf(schema) => return schema.decode(payload),
        DecodeChoice::Format(f) => *f,
        DecodeChoice::Auto => match auto_format(topic, content_type) {
            Some(f) => f,
            None => return Ok(as_json(payload)),
        },
    };
    decode_format(format, topic, payload, aliases)
}

/// Decodes with a format that needs no schema (`Protobuf` needs one: use
/// [`ProtoSchema::decode`]).
pub fn decode_format(
    format: Format,
    topic: &str,
    payload: &[u8],
    aliases: &mut SparkplugAliases,
) -> Result<Value, DecodeError> {
    match format {
        Format::Sparkplug => sparkplug::decode(topic, payload, aliases),
        Format::MsgPack => msgpack::decode(payload),
        Format::Cbor => cbor::decode(payload),
        Format::Protobuf => Err(DecodeError::new(
            "Protobuf needs a .proto file and a message type",
        )),
    }
}

/// The payload as JSON without decoding: JSON stays as it is, text becomes
/// a string, a lone number a number, anything else `{"$binary": ...}`.
pub fn as_json(payload: &[u8]) -> Value {
    match payload::detect(payload) {
        PayloadKind::Empty => Value::String(String::new()),
        PayloadKind::Json | PayloadKind::Number => {
            serde_json::from_slice(payload).unwrap_or_else(|_| text_value(payload))
        }
        PayloadKind::Text => text_value(payload),
        PayloadKind::Binary => binary(payload),
    }
}

fn text_value(payload: &[u8]) -> Value {
    Value::String(String::from_utf8_lossy(payload).into_owned())
}

/// The tree's spelling of binary data.
pub fn binary(bytes: &[u8]) -> Value {
    let mut map = Map::new();
    map.insert("$binary".into(), Value::String(payload::base64(bytes)));
    Value::Object(map)
}

/// A float as a JSON number, or a string when JSON has no spelling for it.
pub fn float(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or_else(
        || {
            Value::String(if v.is_nan() {
                "NaN".into()
            } else if v > 0.0 {
                "inf".into()
            } else {
                "-inf".into()
            })
        },
        Value::Number,
    )
}

/// An `f32` with its shortest decimal spelling (`0.1`, not
/// `0.10000000149011612`).
pub fn float32(v: f32) -> Value {
    float(v.to_string().parse::<f64>().unwrap_or(f64::from(v)))
}

/// Inserts `value` under `key`; a key already present (two CBOR keys `1` and
/// `"1"` both spell `1`) gets `#2`, `#3`, … so that nothing is lost.
pub fn insert_unique(map: &mut Map<String, Value>, key: String, value: Value) {
    if !map.contains_key(&key) {
        map.insert(key, value);
        return;
    }
    let mut n = 2usize;
    loop {
        let candidate = format!("{key}#{n}");
        if !map.contains_key(&candidate) {
            map.insert(candidate, value);
            return;
        }
        n += 1;
    }
}

/// A map key as the tree spells it: strings as they are, anything else as
/// compact JSON text.
pub fn key_text(key: Value) -> String {
    match key {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

pub(crate) fn too_deep() -> DecodeError {
    DecodeError::new(format!("nested deeper than {MAX_DEPTH} levels"))
}

/// The alias tables to read a Sparkplug message on `topic` with, taken
/// from the store: for each of its births (the edge node's NBIRTH, then the
/// device's DBIRTH) the latest kept one received before message `before`.
/// Births evicted from the history leave their aliases unnamed (the decoded
/// tree lists them under `$unnamed_aliases`).
pub fn sparkplug_aliases_in_store(
    store: &crate::model::store::Store,
    topic: &str,
    before: crate::model::store::MessageId,
) -> SparkplugAliases {
    let mut aliases = SparkplugAliases::default();
    let Some(t) = SparkplugTopic::parse(topic) else {
        return aliases;
    };
    for birth in t.birth_topics() {
        let Some(node) = store.find(&birth) else {
            continue;
        };
        let payload = store
            .history(node)
            .filter(|m| m.id < before)
            .find_map(|m| m.payload);
        if let Some(payload) = payload {
            aliases.learn(&birth, payload);
        }
    }
    aliases
}

/// Pretty-printed JSON of a decoded tree, for the views.
pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("(cannot print: {e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_picks_sparkplug_on_its_namespace_only() {
        assert_eq!(
            auto_format("spBv1.0/plant/DDATA/edge1/dev1", None),
            Some(Format::Sparkplug)
        );
        assert_eq!(
            auto_format("spBv1.0/plant/NBIRTH/edge1", None),
            Some(Format::Sparkplug)
        );
        // STATE carries JSON/text, not protobuf.
        assert_eq!(auto_format("spBv1.0/STATE/host1", None), None);
        assert_eq!(auto_format("plant/DDATA/edge1", None), None);
        assert_eq!(auto_format("spBv1.0/plant/BOGUS/edge1", None), None);
    }

    #[test]
    fn auto_follows_content_type_and_never_guesses_msgpack() {
        assert_eq!(
            auto_format("a/b", Some("application/msgpack")),
            Some(Format::MsgPack)
        );
        assert_eq!(
            auto_format("a/b", Some("Application/CBOR; x=1")),
            Some(Format::Cbor)
        );
        assert_eq!(auto_format("a/b", Some("application/json")), None);
        assert_eq!(auto_format("a/b", None), None);
    }

    #[test]
    fn auto_without_safe_format_gives_the_payload_as_json() {
        let mut aliases = SparkplugAliases::default();
        let d = |p: &[u8], a: &mut SparkplugAliases| decode(&DecodeChoice::Auto, "x", None, p, a);
        assert_eq!(
            d(br#"{"a":1}"#, &mut aliases),
            Ok(serde_json::json!({"a": 1}))
        );
        assert_eq!(d(b"hello", &mut aliases), Ok(Value::String("hello".into())));
        assert_eq!(d(b"21.5", &mut aliases), Ok(serde_json::json!(21.5)));
        // A byte 0x01 is valid MessagePack, but must not be guessed as such.
        assert_eq!(
            d(&[0x01, 0xff], &mut aliases),
            Ok(serde_json::json!({"$binary": "Af8="}))
        );
    }

    #[test]
    fn decode_choice_parses_names_and_rejects_unknown() {
        assert!(matches!(
            DecodeChoice::parse("auto"),
            Ok(DecodeChoice::Auto)
        ));
        assert!(matches!(
            DecodeChoice::parse("cbor"),
            Ok(DecodeChoice::Format(Format::Cbor))
        ));
        let err = DecodeChoice::parse("yaml")
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(err.contains("unknown decoder 'yaml'"), "{err}");
        let err = DecodeChoice::parse("protobuf:only.proto")
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(err.contains("needs a file and a message type"), "{err}");
    }

    #[test]
    fn duplicate_keys_after_stringifying_are_kept() {
        let mut map = Map::new();
        insert_unique(&mut map, "1".into(), Value::from(1));
        insert_unique(&mut map, "1".into(), Value::from(2));
        insert_unique(&mut map, "1".into(), Value::from(3));
        assert_eq!(
            Value::Object(map),
            serde_json::json!({"1": 1, "1#2": 2, "1#3": 3})
        );
    }

    #[test]
    fn floats_json_cannot_spell_become_strings() {
        assert_eq!(float(f64::NAN), Value::String("NaN".into()));
        assert_eq!(float(f64::NEG_INFINITY), Value::String("-inf".into()));
        assert_eq!(float32(0.1), serde_json::json!(0.1));
    }
}
