//! `Config::from_yaml` over arbitrary text, with and without environment overrides: a
//! config either loads or fails with an error, never a panic.
#![no_main]

use ai_service::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // A line `AI_SERVICE__…=value` at the end doubles as an environment override.
    let vars: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.starts_with("AI_SERVICE__"))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let _ = Config::from_yaml(text, vars);
});
