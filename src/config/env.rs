//! Environment overrides: `AI_SERVICE__SERVER__LISTEN=0.0.0.0:9000` sets `server.listen`.
//!
//! Each variable that starts with [`PREFIX`] names a path into the YAML tree, segments
//! separated by `__`, lower-cased; numeric segments index lists. The value is read as a YAML
//! scalar. Overrides are applied to the tree before it is parsed, so a misspelt variable is
//! rejected like a misspelt key.

use yaml_serde::{Mapping, Value};

use super::ConfigError;

/// Variables with this prefix override the configuration file.
pub const PREFIX: &str = "AI_SERVICE__";

/// Applies every override in `vars` to `tree`, in name order so the result does not depend on
/// the environment's order.
pub fn apply<I>(tree: &mut Value, vars: I) -> Result<(), ConfigError>
where
    I: IntoIterator<Item = (String, String)>,
{
    let mut overrides: Vec<(String, String)> =
        vars.into_iter().filter(|(name, _)| name.starts_with(PREFIX)).collect();
    overrides.sort();
    for (name, value) in overrides {
        let path: Vec<String> =
            name[PREFIX.len()..].split("__").map(str::to_ascii_lowercase).collect();
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::new(name, "empty path segment in environment override"));
        }
        let value = yaml_serde::from_str::<Value>(&value).unwrap_or(Value::String(value));
        set(tree, &path, value).map_err(|why| ConfigError::new(name, why))?;
    }
    Ok(())
}

fn set(node: &mut Value, path: &[String], value: Value) -> Result<(), String> {
    let Some((head, rest)) = path.split_first() else {
        *node = value;
        return Ok(());
    };
    if node.is_null() {
        *node = Value::Mapping(Mapping::new());
    }
    match node {
        Value::Mapping(map) => {
            let key = Value::String(head.clone());
            let child = map.entry(key).or_insert(Value::Null);
            set(child, rest, value)
        }
        Value::Sequence(items) => {
            let index: usize =
                head.parse().map_err(|_| format!("{head:?} is not an index into a list"))?;
            let len = items.len();
            let child = items
                .get_mut(index)
                .ok_or_else(|| format!("index {index} is past the end of a list of {len}"))?;
            set(child, rest, value)
        }
        _ => Err(format!("cannot set {head:?} inside a scalar")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn sets_nested_keys_and_list_items() {
        let mut tree: Value = yaml_serde::from_str("routes: [{name: a}]").unwrap();
        apply(
            &mut tree,
            vars(&[
                ("AI_SERVICE__SERVER__LISTEN", "127.0.0.1:1"),
                ("AI_SERVICE__ROUTES__0__NAME", "b"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(tree["server"]["listen"], Value::String("127.0.0.1:1".into()));
        assert_eq!(tree["routes"][0]["name"], Value::String("b".into()));
    }

    #[test]
    fn an_index_past_the_end_names_the_variable() {
        let mut tree = Value::Null;
        let err = apply(
            &mut tree,
            vars(&[("AI_SERVICE__ROUTES", "[]"), ("AI_SERVICE__ROUTES__3__NAME", "x")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("AI_SERVICE__ROUTES__3__NAME"), "{err}");
    }
}
