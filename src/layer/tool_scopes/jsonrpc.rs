//! The JSON-RPC reader: which tools a message (or a batch) calls, read
//! strictly, so that no two readers can see two different tools in one
//! message.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// The tools a JSON-RPC message (or batch) calls: the `params.name` of each
/// `tools/call`. Not JSON, not JSON-RPC's shape (an object, or an array of
/// them, whose `params` is an object or an array), or a member named twice,
/// is an error.
pub(super) fn tools_called(body: &[u8]) -> Result<Vec<String>, String> {
    let Payload(messages) = serde_json::from_slice(body)
        .map_err(|e| format!("The request body is not a JSON-RPC message: {e}"))?;
    Ok(messages
        .into_iter()
        .filter(|m| m.method.as_deref() == Some("tools/call"))
        .filter_map(|m| m.tool)
        .collect())
}

/// One message, or a batch of them.
struct Payload(Vec<Message>);

/// What a message says about tools.
#[derive(Default)]
struct Message {
    method: Option<String>,
    tool: Option<String>,
}

impl<'de> de::Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PayloadVisitor;
        impl<'de> Visitor<'de> for PayloadVisitor {
            type Value = Payload;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON-RPC message or batch")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Payload, A::Error> {
                Ok(Payload(vec![MessageVisitor.visit_map(map)?]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Payload, A::Error> {
                let mut messages = Vec::new();
                while let Some(message) = seq.next_element()? {
                    messages.push(message);
                }
                Ok(Payload(messages))
            }
        }
        d.deserialize_any(PayloadVisitor)
    }
}

impl<'de> de::Deserialize<'de> for Message {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(MessageVisitor)
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC message")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message, A::Error> {
        let mut message = Message::default();
        let (mut method_seen, mut params_seen) = (false, false);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "method" => {
                    once(&mut method_seen, "method")?;
                    message.method = map.next_value::<StringOrNot>()?.0;
                }
                "params" => {
                    once(&mut params_seen, "params")?;
                    message.tool = map.next_value::<Params>()?.0;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(message)
    }
}

/// A member seen for the first time, or the error that it was seen before.
fn once<Er: de::Error>(seen: &mut bool, name: &str) -> Result<(), Er> {
    if std::mem::replace(seen, true) {
        return Err(Er::custom(format!("the member {name:?} is named twice")));
    }
    Ok(())
}

/// `params`: its `name` when that is a string.
struct Params(Option<String>);

impl<'de> de::Deserialize<'de> for Params {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ParamsVisitor;
        impl<'de> Visitor<'de> for ParamsVisitor {
            type Value = Params;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("JSON-RPC params (an object, an array or null)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params, A::Error> {
                let (mut name, mut seen) = (None, false);
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if key == "name" {
                        once(&mut seen, "name")?;
                        name = map.next_value::<StringOrNot>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Params(name))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Params, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Params(None))
            }
            fn visit_unit<Er: de::Error>(self) -> Result<Params, Er> {
                Ok(Params(None))
            }
        }
        d.deserialize_any(ParamsVisitor)
    }
}

/// A `name` or `method`: kept when it is a string, read through otherwise.
struct StringOrNot(Option<String>);

impl<'de> de::Deserialize<'de> for StringOrNot {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Ok(StringOrNot(value.as_str().map(str::to_owned)))
    }
}

#[cfg(test)]
mod tests {
    use super::tools_called;

    #[test]
    fn tools_are_read_from_messages_and_batches() {
        let call = |name: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}","arguments":{{}}}}}}"#
            )
        };
        assert_eq!(tools_called(call("whoami").as_bytes()).unwrap(), ["whoami"]);
        let batch = format!("[{},{}]", call("a"), call("b"));
        assert_eq!(tools_called(batch.as_bytes()).unwrap(), ["a", "b"]);
        // Members in any order, escapes decoded as every JSON reader does.
        let reordered = r#"{"params":{"arguments":{"name":"x"},"name":"admin\u005freset"},"id":2,"method":"tools/call"}"#;
        assert_eq!(tools_called(reordered.as_bytes()).unwrap(), ["admin_reset"]);
        for quiet in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized","params":null}"#,
            "[]",
        ] {
            assert!(
                tools_called(quiet.as_bytes()).unwrap().is_empty(),
                "{quiet}"
            );
        }
    }

    #[test]
    fn ambiguous_or_broken_bodies_are_refused() {
        for refused in [
            r#"{"method":"tools/call","params":{"name":"admin_reset","name":"whoami"}}"#,
            r#"{"method":"tools/call","params":{"name":"admin_reset"},"params":{"name":"whoami"}}"#,
            r#"{"method":"tools/list","method":"tools/call","params":{"name":"admin_reset"}}"#,
            r#"{"method":"tools/call","params":{"name":"admin_reset"}"#,
            r#"{"method":"tools/call"} {"method":"tools/call"}"#,
            "",
            "not json",
            "null",
            "7",
            "[7]",
            r#"{"method":"tools/call","params":"admin_reset"}"#,
        ] {
            assert!(tools_called(refused.as_bytes()).is_err(), "{refused}");
        }
    }
}
