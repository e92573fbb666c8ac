//! MessagePack payloads (with `rmpv`) as JSON-like trees.

use super::{DecodeError, MAX_DEPTH, binary, float, float32, insert_unique, key_text, too_deep};
use serde_json::{Map, Value};

/// Decodes one MessagePack value filling the whole payload.
pub fn decode(payload: &[u8]) -> Result<Value, DecodeError> {
    if payload.is_empty() {
        return Err(DecodeError::new("not MessagePack: the payload is empty"));
    }
    let mut rest = payload;
    // rmpv counts a container and its items as two levels.
    let value = rmpv::decode::read_value_with_max_depth(&mut rest, 2 * MAX_DEPTH + 2).map_err(
        |e| match e {
            rmpv::decode::Error::DepthLimitExceeded => too_deep(),
            e if e.kind() == std::io::ErrorKind::UnexpectedEof => DecodeError::new(format!(
                "not MessagePack: the payload ends inside a value ({} bytes)",
                payload.len()
            )),
            e => DecodeError::new(format!("not MessagePack: {e}")),
        },
    )?;
    if !rest.is_empty() {
        return Err(DecodeError::new(format!(
            "not MessagePack: {} bytes left after the first value (of {})",
            rest.len(),
            payload.len()
        )));
    }
    to_json(value, 0)
}

fn to_json(value: rmpv::Value, depth: usize) -> Result<Value, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    Ok(match value {
        rmpv::Value::Nil => Value::Null,
        rmpv::Value::Boolean(b) => Value::Bool(b),
        rmpv::Value::Integer(i) => match (i.as_u64(), i.as_i64()) {
            (Some(u), _) => Value::from(u),
            (None, Some(s)) => Value::from(s),
            (None, None) => Value::String(i.to_string()),
        },
        rmpv::Value::F32(f) => float32(f),
        rmpv::Value::F64(f) => float(f),
        rmpv::Value::String(s) => match s.as_str() {
            Some(text) => Value::String(text.to_string()),
            // A "string" that is not UTF-8: keep its bytes.
            None => binary(s.as_bytes()),
        },
        rmpv::Value::Binary(b) => binary(&b),
        rmpv::Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| to_json(v, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        rmpv::Value::Map(pairs) => {
            let mut map = Map::new();
            for (k, v) in pairs {
                let key = key_text(to_json(k, depth + 1)?);
                insert_unique(&mut map, key, to_json(v, depth + 1)?);
            }
            Value::Object(map)
        }
        rmpv::Value::Ext(ty, data) => {
            let mut map = Map::new();
            map.insert("$ext".into(), Value::from(ty));
            if let Value::Object(b) = binary(&data) {
                map.extend(b);
            }
            Value::Object(map)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Encodes `value` with rmpv's writer, the same crate other tools use.
    fn encode(value: &rmpv::Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, value).expect("writing to a Vec cannot fail");
        out
    }

    #[test]
    fn msgpack_map_with_nested_array_becomes_json_tree() {
        let value = rmpv::Value::Map(vec![
            ("temp".into(), rmpv::Value::F64(21.5)),
            ("count".into(), rmpv::Value::from(-3)),
            (
                "tags".into(),
                rmpv::Value::Array(vec!["a".into(), rmpv::Value::Nil, true.into()]),
            ),
        ]);
        assert_eq!(
            decode(&encode(&value)),
            Ok(json!({"temp": 21.5, "count": -3, "tags": ["a", null, true]}))
        );
    }

    #[test]
    fn msgpack_binary_and_ext_get_markers() {
        let value = rmpv::Value::Array(vec![
            rmpv::Value::Binary(vec![0, 1, 2]),
            rmpv::Value::Ext(-1, vec![0xff]),
        ]);
        assert_eq!(
            decode(&encode(&value)),
            Ok(json!([{"$binary": "AAEC"}, {"$ext": -1, "$binary": "/w=="}]))
        );
    }

    #[test]
    fn msgpack_integer_and_array_keys_are_stringified() {
        let value = rmpv::Value::Map(vec![
            (rmpv::Value::from(1), "one".into()),
            (rmpv::Value::Array(vec![1.into(), 2.into()]), "pair".into()),
            ("1".into(), "string one".into()),
        ]);
        assert_eq!(
            decode(&encode(&value)),
            Ok(json!({"1": "one", "[1,2]": "pair", "1#2": "string one"}))
        );
    }

    #[test]
    fn msgpack_u64_max_and_f32_kept_exact() {
        let value = rmpv::Value::Array(vec![rmpv::Value::from(u64::MAX), rmpv::Value::F32(0.1)]);
        assert_eq!(decode(&encode(&value)), Ok(json!([u64::MAX, 0.1])));
    }

    #[test]
    fn msgpack_truncated_payload_is_an_error() {
        let bytes = encode(&rmpv::Value::from("a long enough string"));
        let err = decode(&bytes[..5]).err().map(|e| e.0).unwrap_or_default();
        assert!(err.contains("ends inside a value"), "{err}");
    }

    #[test]
    fn msgpack_trailing_bytes_are_an_error() {
        let err = decode(b"hello").err().map(|e| e.0).unwrap_or_default();
        assert!(err.contains("4 bytes left after the first value"), "{err}");
    }

    #[test]
    fn msgpack_deep_nesting_is_refused_not_a_stack_overflow() {
        // 100,000 nested one-element arrays (0x91) around a nil.
        let mut bytes = vec![0x91u8; 100_000];
        bytes.push(0xc0);
        let err = decode(&bytes).err().map(|e| e.0).unwrap_or_default();
        assert!(err.contains("nested deeper than 100 levels"), "{err}");
        // 100 levels are fine.
        let mut ok = vec![0x91u8; 100];
        ok.push(0xc0);
        assert!(decode(&ok).is_ok());
    }

    #[test]
    fn msgpack_huge_declared_length_does_not_allocate_it() {
        // array32 claiming 4 billion items, then nothing.
        let err = decode(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0])
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(err.contains("ends inside a value"), "{err}");
        // bin32 claiming 4 GiB.
        assert!(decode(&[0xc6, 0xff, 0xff, 0xff, 0xff, 1, 2]).is_err());
    }

    #[test]
    fn msgpack_empty_payload_is_an_error() {
        let err = decode(b"").err().map(|e| e.0).unwrap_or_default();
        assert!(err.contains("empty"), "{err}");
    }
}
