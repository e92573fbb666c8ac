//! Protobuf payloads decoded with a user's `.proto` file, compiled at run
//! time by `protox` (pure Rust, no protoc) and read with `prost-reflect`.

use super::{DecodeError, MAX_DEPTH, too_deep};
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A compiled `.proto` file and the message type payloads are decoded as.
#[derive(Clone, Debug)]
pub struct ProtoSchema {
    file: PathBuf,
    message: MessageDescriptor,
}

/// Most message names an error lists.
const LISTED: usize = 20;

impl ProtoSchema {
    /// Compiles `file` (its imports are looked up beside it, and the
    /// well-known `google/protobuf/*` types are built in) and picks
    /// `message`, by full name (`pkg.Msg`) or by its short name when that is
    /// unambiguous.
    pub fn load(file: &Path, message: &str) -> Result<ProtoSchema, DecodeError> {
        let shown = file.display();
        if !file.is_file() {
            return Err(DecodeError::new(format!("{shown}: no such .proto file")));
        }
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut compiler =
            protox::Compiler::new([dir]).map_err(|e| DecodeError::new(format!("{shown}: {e}")))?;
        compiler
            .include_imports(true)
            .open_file(file)
            .map_err(|e| DecodeError::new(format!("{shown}: {e}")))?;
        let pool = compiler.descriptor_pool();
        let message = find_message(&pool, message.trim())
            .map_err(|e| DecodeError::new(format!("{shown}: {e}")))?;
        Ok(ProtoSchema {
            file: file.to_path_buf(),
            message,
        })
    }

    /// The message type's full name (`pkg.Msg`).
    pub fn message_name(&self) -> &str {
        self.message.full_name()
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Decodes a payload as the chosen message type: fields by their
    /// `.proto` names, defaults included (a zero is a value to plot, not a
    /// gap), 64-bit integers as numbers, bytes as base64 (the protobuf JSON
    /// mapping). Fields the type does not declare are counted under
    /// `$unknown_fields`, never dropped silently.
    pub fn decode(&self, payload: &[u8]) -> Result<Value, DecodeError> {
        let msg = DynamicMessage::decode(self.message.clone(), payload).map_err(|e| {
            DecodeError::new(format!("not a {} message: {e}", self.message.full_name()))
        })?;
        let options = SerializeOptions::new()
            .use_proto_field_name(true)
            .stringify_64_bit_integers(false)
            .skip_default_fields(false);
        let mut value = msg
            .serialize_with_options(serde_json::value::Serializer, &options)
            .map_err(|e| DecodeError::new(format!("cannot show the message: {e}")))?;
        if depth(&value, 0) > MAX_DEPTH {
            return Err(too_deep());
        }
        let unknown = msg.unknown_fields().count();
        if unknown > 0
            && let Value::Object(map) = &mut value
        {
            map.insert("$unknown_fields".into(), Value::from(unknown));
        }
        Ok(value)
    }
}

/// Nesting depth of a tree, stopping early past [`MAX_DEPTH`].
fn depth(value: &Value, at: usize) -> usize {
    if at > MAX_DEPTH {
        return at;
    }
    let children: Box<dyn Iterator<Item = &Value>> = match value {
        Value::Array(items) => Box::new(items.iter()),
        Value::Object(map) => Box::new(map.values()),
        _ => return at,
    };
    children.map(|v| depth(v, at + 1)).max().unwrap_or(at)
}

fn find_message(pool: &DescriptorPool, name: &str) -> Result<MessageDescriptor, String> {
    if let Some(m) = pool.get_message_by_name(name.trim_start_matches('.')) {
        return Ok(m);
    }
    let suffix = format!(".{name}");
    let matching: Vec<MessageDescriptor> = pool
        .all_messages()
        .filter(|m| m.full_name() == name || m.full_name().ends_with(&suffix))
        .collect();
    match matching.as_slice() {
        [one] => Ok(one.clone()),
        [] => {
            let mut known: Vec<String> = pool
                .all_messages()
                .filter(|m| !m.full_name().starts_with("google.protobuf."))
                .map(|m| m.full_name().to_string())
                .collect();
            known.sort();
            let more = known.len().saturating_sub(LISTED);
            known.truncate(LISTED);
            if known.is_empty() {
                return Err(format!("no message type '{name}': the file declares none"));
            }
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            Err(format!(
                "no message type '{name}'; the file declares {}{more}",
                known.join(", ")
            ))
        }
        many => Err(format!(
            "message type '{name}' is ambiguous: {}",
            many.iter()
                .map(|m| m.full_name().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::Value as PValue;
    use serde_json::json;

    const PROTO: &str = r#"
        syntax = "proto3";
        package factory;
        message Reading {
            string sensor = 1;
            double celsius = 2;
            int64 at_ms = 3;
            repeated Tag tags = 4;
            bool ok = 5;
        }
        message Tag { string key = 1; string value = 2; }
    "#;

    fn schema_file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("reading.proto");
        std::fs::write(&path, text).expect("write proto");
        (dir, path)
    }

    /// Encodes a Reading with prost-reflect's encoder (not by hand).
    fn reading(schema: &ProtoSchema) -> Vec<u8> {
        let mut msg = DynamicMessage::new(schema.message.clone());
        msg.set_field_by_name("sensor", PValue::String("press-7".into()));
        msg.set_field_by_name("celsius", PValue::F64(81.25));
        msg.set_field_by_name("at_ms", PValue::I64(1_700_000_000_123));
        let tag_desc = schema
            .message
            .parent_pool()
            .get_message_by_name("factory.Tag")
            .expect("Tag declared");
        let mut tag = DynamicMessage::new(tag_desc);
        tag.set_field_by_name("key", PValue::String("line".into()));
        tag.set_field_by_name("value", PValue::String("A".into()));
        msg.set_field_by_name("tags", PValue::List(vec![PValue::Message(tag)]));
        prost::Message::encode_to_vec(&msg)
    }

    #[test]
    fn protobuf_message_decoded_with_its_proto() {
        let (_dir, path) = schema_file(PROTO);
        let schema = ProtoSchema::load(&path, "factory.Reading").expect("compiles");
        assert_eq!(schema.message_name(), "factory.Reading");
        assert_eq!(
            schema.decode(&reading(&schema)),
            Ok(json!({
                "sensor": "press-7",
                "celsius": 81.25,
                "at_ms": 1_700_000_000_123_i64,
                "tags": [{"key": "line", "value": "A"}],
                "ok": false,
            }))
        );
    }

    #[test]
    fn protobuf_short_message_name_accepted_when_unique() {
        let (_dir, path) = schema_file(PROTO);
        let schema = ProtoSchema::load(&path, "Reading").expect("unique short name");
        assert_eq!(schema.message_name(), "factory.Reading");
    }

    #[test]
    fn protobuf_wrong_message_type_lists_the_declared_ones() {
        let (_dir, path) = schema_file(PROTO);
        let err = ProtoSchema::load(&path, "factory.Nope")
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(
            err.contains("no message type 'factory.Nope'")
                && err.contains("factory.Reading, factory.Tag"),
            "{err}"
        );
    }

    #[test]
    fn protobuf_broken_proto_gets_a_clear_error() {
        let (_dir, path) = schema_file("syntax = \"proto3\";\nmessage A { strin x = 1; }\n");
        let err = ProtoSchema::load(&path, "A")
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(
            err.contains("reading.proto") && err.contains("strin"),
            "{err}"
        );
        let err = ProtoSchema::load(Path::new("/nonexistent/x.proto"), "A")
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(err.contains("no such .proto file"), "{err}");
    }

    #[test]
    fn protobuf_garbage_payload_is_an_error_not_a_panic() {
        let (_dir, path) = schema_file(PROTO);
        let schema = ProtoSchema::load(&path, "factory.Reading").expect("compiles");
        let err = schema
            .decode(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(err.contains("not a factory.Reading message"), "{err}");
    }

    #[test]
    fn protobuf_fields_the_type_lacks_are_counted() {
        let (_dir, path) = schema_file(PROTO);
        let schema = ProtoSchema::load(&path, "factory.Tag").expect("compiles");
        // Field 9 (varint 1): a number Tag does not declare.
        let decoded = schema.decode(&[0x48, 0x01]).expect("valid protobuf");
        assert_eq!(decoded["$unknown_fields"], json!(1));
    }

    #[test]
    fn protobuf_deep_recursion_is_refused() {
        let (_dir, path) = schema_file("syntax = \"proto3\";\nmessage N { N child = 1; }\n");
        let schema = ProtoSchema::load(&path, "N").expect("compiles");
        // 200 levels of `child`: each level is tag 0x0a + length.
        let mut bytes: Vec<u8> = Vec::new();
        for _ in 0..200 {
            let mut outer = vec![0x0a];
            let mut len = bytes.len();
            loop {
                let b = (len & 0x7f) as u8;
                len >>= 7;
                if len == 0 {
                    outer.push(b);
                    break;
                }
                outer.push(b | 0x80);
            }
            outer.extend_from_slice(&bytes);
            bytes = outer;
        }
        assert!(schema.decode(&bytes).is_err());
    }
}
