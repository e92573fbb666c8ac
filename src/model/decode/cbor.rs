//! CBOR payloads (with `ciborium`) as JSON-like trees.

use super::{DecodeError, MAX_DEPTH, binary, float, insert_unique, key_text, too_deep};
use serde_json::{Map, Value};

/// Decodes one CBOR data item filling the whole payload.
pub fn decode(payload: &[u8]) -> Result<Value, DecodeError> {
    if payload.is_empty() {
        return Err(DecodeError::new("not CBOR: the payload is empty"));
    }
    let mut rest = payload;
    let value: ciborium::Value =
        ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_DEPTH + 1).map_err(|e| {
            match e {
                ciborium::de::Error::RecursionLimitExceeded => too_deep(),
                ciborium::de::Error::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    DecodeError::new(format!(
                        "not CBOR: the payload ends inside a value ({} bytes)",
                        payload.len()
                    ))
                }
                ciborium::de::Error::Io(e) => DecodeError::new(format!("not CBOR: {e}")),
                ciborium::de::Error::Syntax(at) => {
                    DecodeError::new(format!("not CBOR: invalid data at byte {at}"))
                }
                ciborium::de::Error::Semantic(Some(at), why) => {
                    DecodeError::new(format!("not CBOR: {why} (at byte {at})"))
                }
                ciborium::de::Error::Semantic(None, why) => {
                    DecodeError::new(format!("not CBOR: {why}"))
                }
            }
        })?;
    if !rest.is_empty() {
        return Err(DecodeError::new(format!(
            "not CBOR: {} bytes left after the first data item (of {})",
            rest.len(),
            payload.len()
        )));
    }
    to_json(value, 0)
}

fn to_json(value: ciborium::Value, depth: usize) -> Result<Value, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    Ok(match value {
        ciborium::Value::Null => Value::Null,
        ciborium::Value::Bool(b) => Value::Bool(b),
        ciborium::Value::Integer(i) => {
            let wide = i128::from(i);
            if let Ok(u) = u64::try_from(wide) {
                Value::from(u)
            } else if let Ok(s) = i64::try_from(wide) {
                Value::from(s)
            } else {
                // Past 64 bits: JSON numbers would round it.
                Value::String(wide.to_string())
            }
        }
        ciborium::Value::Float(f) => float(f),
        ciborium::Value::Text(s) => Value::String(s),
        ciborium::Value::Bytes(b) => binary(&b),
        ciborium::Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| to_json(v, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        ciborium::Value::Map(pairs) => {
            let mut map = Map::new();
            for (k, v) in pairs {
                let key = key_text(to_json(k, depth + 1)?);
                insert_unique(&mut map, key, to_json(v, depth + 1)?);
            }
            Value::Object(map)
        }
        ciborium::Value::Tag(tag, inner) => {
            let mut map = Map::new();
            map.insert("$tag".into(), Value::from(tag));
            map.insert("value".into(), to_json(*inner, depth + 1)?);
            Value::Object(map)
        }
        // `ciborium::Value` is non-exhaustive.
        other => Value::String(format!("(unsupported CBOR value {other:?})")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn encode(value: &ciborium::Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(value, &mut out).expect("writing to a Vec cannot fail");
        out
    }

    fn text(s: &str) -> ciborium::Value {
        ciborium::Value::Text(s.into())
    }

    #[test]
    fn cbor_map_with_nested_values_becomes_json_tree() {
        let value = ciborium::Value::Map(vec![
            (text("temp"), ciborium::Value::Float(21.5)),
            (text("n"), ciborium::Value::Integer((-7).into())),
            (
                text("list"),
                ciborium::Value::Array(vec![ciborium::Value::Bool(true), ciborium::Value::Null]),
            ),
        ]);
        assert_eq!(
            decode(&encode(&value)),
            Ok(json!({"temp": 21.5, "n": -7, "list": [true, null]}))
        );
    }

    #[test]
    fn cbor_rfc8949_example_bytes_decode() {
        // RFC 8949 appendix A: {"a": 1, "b": [2, 3]}
        let bytes = [0xa2, 0x61, 0x61, 0x01, 0x61, 0x62, 0x82, 0x02, 0x03];
        assert_eq!(decode(&bytes), Ok(json!({"a": 1, "b": [2, 3]})));
        // 1(1363896240): an epoch date tag.
        let bytes = [0xc1, 0x1a, 0x51, 0x4b, 0x67, 0xb0];
        assert_eq!(
            decode(&bytes),
            Ok(json!({"$tag": 1, "value": 1_363_896_240}))
        );
    }

    #[test]
    fn cbor_bytes_and_integer_keys_get_markers() {
        let value = ciborium::Value::Map(vec![
            (
                ciborium::Value::Integer(1.into()),
                ciborium::Value::Bytes(vec![0xde, 0xad]),
            ),
            (text("1"), text("dup")),
        ]);
        assert_eq!(
            decode(&encode(&value)),
            Ok(json!({"1": {"$binary": "3q0="}, "1#2": "dup"}))
        );
    }

    #[test]
    fn cbor_non_finite_floats_become_strings() {
        let value = ciborium::Value::Array(vec![
            ciborium::Value::Float(f64::NAN),
            ciborium::Value::Float(f64::INFINITY),
        ]);
        assert_eq!(decode(&encode(&value)), Ok(json!(["NaN", "inf"])));
    }

    #[test]
    fn cbor_truncated_and_trailing_bytes_are_errors() {
        let bytes = encode(&text("a long enough string"));
        let err = decode(&bytes[..6]).err().map(|e| e.0).unwrap_or_default();
        assert!(err.contains("ends inside a value"), "{err}");
        let mut two = encode(&ciborium::Value::Integer(1.into()));
        two.push(0x02);
        let err = decode(&two).err().map(|e| e.0).unwrap_or_default();
        assert!(err.contains("1 bytes left"), "{err}");
        assert!(decode(b"").is_err());
    }

    #[test]
    fn cbor_deep_nesting_is_refused_not_a_stack_overflow() {
        let mut bytes = vec![0x81u8; 100_000];
        bytes.push(0xf6);
        let err = decode(&bytes).err().map(|e| e.0).unwrap_or_default();
        assert!(err.contains("nested deeper than 100 levels"), "{err}");
        let mut ok = vec![0x81u8; 100];
        ok.push(0xf6);
        assert!(decode(&ok).is_ok());
    }

    #[test]
    fn cbor_huge_declared_length_does_not_allocate_it() {
        // A byte string claiming 2^64-1 bytes, then two bytes.
        let bytes = [0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2];
        assert!(decode(&bytes).is_err());
        // An array claiming 2^32 items.
        assert!(decode(&[0x9a, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
    }
}
