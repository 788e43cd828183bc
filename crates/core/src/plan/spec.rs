//! The maps a runbook passes to `runbook(#{...})` (read as `plan::Meta`) and
//! `param(name, #{...})`, read with rhai's serde support. The accepted keys are the structs' fields: a key that is not one
//! of them is an error that lists them, so a typo never passes silently.

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};
use serde::Deserialize;

/// `param(name, #{...})`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ParamSpec {
    pub default: Option<serde_json::Value>,
    pub help: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    pub env: Option<String>,
    /// The param picks which secret is rotated (a server, a project): it is part of the
    /// rotation's lock.
    #[serde(default)]
    pub locates: crate::plan::Locates,
}

/// A list of strings, or one string for a list of one.
pub(crate) fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Why a map could not be read: a key that is not an option, or a value of the wrong type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecError {
    UnknownKey {
        key: String,
        known: Vec<&'static str>,
    },
    Invalid(String),
}

/// Reads `map` as a `T`; unknown keys are reported with the list of known ones.
pub fn read<T: DeserializeOwned>(map: &rhai::Map) -> Result<T, SpecError> {
    let known = fields::<T>();
    if let Some(key) = map.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(SpecError::UnknownKey {
            key: key.to_string(),
            known: known.to_vec(),
        });
    }
    rhai::serde::from_dynamic::<T>(&rhai::Dynamic::from_map(map.clone())).map_err(|e| {
        // rhai reports serde's errors as syntax errors; the message itself is serde's.
        let text = e.to_string();
        SpecError::Invalid(runbook_secret::without_values(
            text.trim_start_matches("Syntax error: "),
        ))
    })
}

/// The field names a struct's `Deserialize` asks for, learned by asking it once.
fn fields<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut found: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldProbe(&mut found));
    found
}

struct FieldProbe<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("field probe"))
    }

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("field probe"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rhai::{Dynamic, Map};

    fn map(pairs: &[(&str, Dynamic)]) -> Map {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), v.clone()))
            .collect()
    }

    #[test]
    fn known_keys_come_from_the_struct() {
        assert_eq!(
            fields::<ParamSpec>(),
            &["default", "help", "required", "secret", "env", "locates"]
        );
        assert!(fields::<crate::plan::Meta>().contains(&"cadence_days"));
    }

    #[test]
    fn a_typo_names_the_key_and_the_known_ones() {
        let m = map(&[("cadnce_days", Dynamic::from(30_i64))]);
        match read::<crate::plan::Meta>(&m) {
            Err(SpecError::UnknownKey { key, known }) => {
                assert_eq!(key, "cadnce_days");
                assert!(known.contains(&"cadence_days"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn lists_take_one_string_too_and_defaults_keep_their_json_type() {
        let m = map(&[
            ("id", Dynamic::from("x")),
            ("gotchas", Dynamic::from("one")),
            ("cadence_days", Dynamic::from(90_i64)),
        ]);
        let spec = read::<crate::plan::Meta>(&m).unwrap();
        assert_eq!(spec.gotchas, vec!["one"]);
        assert_eq!(spec.cadence_days, Some(90));
        let p = read::<ParamSpec>(&map(&[(
            "default",
            Dynamic::from_array(vec![Dynamic::from("a"), Dynamic::from("b")]),
        )]))
        .unwrap();
        assert_eq!(p.default, Some(serde_json::json!(["a", "b"])));
        assert!(read::<ParamSpec>(&map(&[("required", Dynamic::from("yes"))])).is_err());
    }
}
