//! JSON read strictly: no object names a member twice, at any depth.
//!
//! serde refuses a known member named twice, not an unknown one, and
//! serde_json's own `Value` silently keeps the last: a second `roles` inside
//! `realm_access`, or a second `cnf`, could hide the first from us while
//! another verifier reads the first. Everything a token, a proof or an
//! introspection answer says is read through one of these two.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Nested deeper than this is refused (serde_json stops at 128 anyway).
const MAX_DEPTH: usize = 32;

/// Past this many members, names are checked through a hash set rather than
/// a list (a list is cheaper for the few members an object usually has).
const LISTED: usize = 16;

/// Whether `json` is one JSON value in which no object names a member twice.
pub(crate) fn unique_members(json: &[u8]) -> bool {
    let mut reader = serde_json::Deserializer::from_slice(json);
    <Unique as serde::Deserialize>::deserialize(&mut reader).is_ok() && reader.end().is_ok()
}

/// Any JSON value, read through and dropped without keeping it, whose
/// objects name each member once. Refused exactly where a [`StrictValue`]
/// would be: numbers out of range, nesting past [`MAX_DEPTH`] (`IgnoredAny`
/// accepts both), so a claim skipped and a claim kept get one verdict.
pub(crate) struct Unique;

impl<'de> serde::Deserialize<'de> for Unique {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Unique, D::Error> {
        d.deserialize_any(UniqueVisitor { depth: 0 })
    }
}

struct UniqueVisitor {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for UniqueVisitor {
    type Value = Unique;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Unique, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Unique;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON without a member named twice")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
        let depth = nested::<A::Error>(self.depth)?;
        let mut names = Names::default();
        while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
            names.insert(name)?;
            map.next_value_seed(UniqueVisitor { depth })?;
        }
        Ok(Unique)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
        let depth = nested::<A::Error>(self.depth)?;
        while seq.next_element_seed(UniqueVisitor { depth })?.is_some() {}
        Ok(Unique)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
        Ok(Unique)
    }
    fn visit_unit<E>(self) -> Result<Unique, E> {
        Ok(Unique)
    }
}

/// The depth inside one more array or object, if that is allowed.
fn nested<E: de::Error>(depth: usize) -> Result<usize, E> {
    (depth < MAX_DEPTH)
        .then_some(depth + 1)
        .ok_or_else(|| E::custom("nested too deep"))
}

/// A member name, borrowed from the input unless it has escapes (serde's
/// own `Cow<str>` always copies).
struct Name<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Name<'de>, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(NameVisitor)
    }
}

/// The member names of one object seen so far.
#[derive(Default)]
struct Names<'de> {
    listed: Vec<Cow<'de, str>>,
    hashed: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> Names<'de> {
    fn insert<E: de::Error>(&mut self, name: Cow<'de, str>) -> Result<(), E> {
        let new = match &mut self.hashed {
            Some(hashed) => hashed.insert(name),
            None if self.listed.len() < LISTED => {
                let new = !self.listed.contains(&name);
                self.listed.push(name);
                new
            }
            None => {
                let mut hashed: HashSet<_> = self.listed.drain(..).collect();
                let new = hashed.insert(name);
                self.hashed = Some(hashed);
                new
            }
        };
        if new {
            Ok(())
        } else {
            Err(E::custom("a member named twice"))
        }
    }
}

/// A `serde_json::Value` with no object member named twice, at any depth,
/// nested at most [`MAX_DEPTH`] deep.
pub(crate) struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor { depth: 0 })
    }
}

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        StrictValue.deserialize(d).map(Strict)
    }
}

/// A [`StrictValue`] as a type, for `next_value::<Strict>()`.
pub(crate) struct Strict(pub(crate) Value);

struct StrictVisitor {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for StrictVisitor {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = nested::<A::Error>(self.depth)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictVisitor { depth })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = nested::<A::Error>(self.depth)?;
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let value = map.next_value_seed(StrictVisitor { depth })?;
            if members.insert(name, value).is_some() {
                return Err(de::Error::custom("a member named twice"));
            }
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_named_twice_is_refused_at_every_depth() {
        for json in [
            r#"{"a":1,"a":2}"#,
            r#"{"realm_access":{"roles":["user"],"roles":["staff"]}}"#,
            r#"[{"x":{"y":[{"z":1,"z":1}]}}]"#,
        ] {
            assert!(!unique_members(json.as_bytes()), "{json}");
            assert!(serde_json::from_str::<Strict>(json).is_err(), "{json}");
        }
        // Many members: past the list, the hash set still finds the twin.
        let many: Vec<String> = (0..40).map(|i| format!(r#""m{i}":{i}"#)).collect();
        let unique = format!("{{{}}}", many.join(","));
        let twice = format!(r#"{{{},"m3":0}}"#, many.join(","));
        assert!(unique_members(unique.as_bytes()));
        assert!(!unique_members(twice.as_bytes()));
        assert!(serde_json::from_str::<Strict>(&twice).is_err());
        let ok = r#"{"a":{"b":1},"c":{"b":2},"d":[{"b":1},{"b":1}]}"#;
        assert!(unique_members(ok.as_bytes()));
        assert!(serde_json::from_str::<Strict>(ok).is_ok());
    }
}
