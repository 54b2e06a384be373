//! The config reader: TOML text into the typed model, with diagnostics.
//!
//! Invariants checked:
//! - a refused config has at least one diagnostic, each located inside the text
//!   (1-based line within the text, column at least 1), naming the origin;
//! - an accepted config keeps its promises: every placeholder is a declared
//!   parameter, no secret parameter is in the command, `stdin` names a declared
//!   parameter, every default is valid for its own type and already canonical,
//!   and a command template printed with `Display` parses back to itself;
//! - reading is deterministic (the same text gives the same answer twice).
#![no_main]

use libfuzzer_sys::fuzz_target;
use regent_config::{validate_data, Placeholder, Template};

const ORIGIN: &str = "fuzz.toml";

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let result = regent_config::parse(text, ORIGIN);
    let again = regent_config::parse(text, ORIGIN);
    assert_eq!(
        format!("{result:?}"),
        format!("{again:?}"),
        "reading is not deterministic"
    );
    let lines = text.split('\n').count();
    match result {
        Err(diags) => {
            assert!(!diags.is_empty(), "refused without a diagnostic");
            for d in &diags {
                assert_eq!(d.origin, ORIGIN);
                if let Some((line, col)) = d.location {
                    assert!(
                        (1..=lines).contains(&line) && col >= 1,
                        "diagnostic at {line}:{col} outside a text of {lines} lines"
                    );
                }
                assert!(!d.message.is_empty(), "an empty diagnostic");
                let _ = d.to_string();
            }
        }
        Ok(config) => {
            for (name, op) in &config.operations {
                for p in op.command.placeholders() {
                    if let Placeholder::Param(n) = p {
                        let spec = op.params.get(n).unwrap_or_else(|| {
                            panic!("{name}: placeholder {{{n}}} is not a declared parameter")
                        });
                        assert!(!spec.secret, "{name}: secret {n} in the command line");
                    }
                }
                if let Some(s) = &op.stdin {
                    assert!(
                        op.params.contains_key(s),
                        "{name}: stdin names no parameter"
                    );
                }
                for (pname, spec) in &op.params {
                    if let Some(d) = &spec.default {
                        let text = spec
                            .kind
                            .check(d)
                            .unwrap_or_else(|e| panic!("{name}.{pname}: default invalid: {e}"));
                        assert_eq!(
                            spec.kind
                                .check(&serde_json::Value::String(text.clone()))
                                .ok(),
                            match spec.kind.value_kind() {
                                regent_config::ValueKind::String => Some(text.clone()),
                                _ => None,
                            },
                            "{name}.{pname}: default text is not canonical"
                        );
                    }
                    let _ = spec.describe();
                }
                // With no data, either the defaults validate or a field is named.
                match validate_data(op, &serde_json::Value::Null) {
                    Ok(p) => {
                        for (k, _) in p.iter() {
                            assert!(op.params.contains_key(k));
                        }
                    }
                    Err(e) => assert!(op.params.contains_key(&e.field), "{name}: {e}"),
                }
                let shown = op.command.to_string();
                let elements: Vec<String> = serde_json::from_str(&shown)
                    .unwrap_or_else(|e| panic!("{name}: template shown as {shown}: {e}"));
                let back = Template::parse(&elements)
                    .unwrap_or_else(|e| panic!("{name}: {shown} does not parse back: {e}"));
                assert_eq!(back, op.command, "{name}: template does not round-trip");
                let _ = op.describe();
            }
        }
    }
});
