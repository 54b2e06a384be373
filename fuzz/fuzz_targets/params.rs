//! Request data against declared parameters (`validate_data`), then the command
//! template filled with the validated values (`Template::render`).
//!
//! Input: byte 0 picks an operation of a fixed config covering every parameter
//! type, byte 1 picks the caller's identity, the rest is the request's `data`
//! (JSON).
//!
//! Invariants checked:
//! - a refused `data` names a declared field, `data`, or an unknown key shown
//!   safely (no control characters, at most 64 characters), and the reason never
//!   contains a value that was sent (values carrying `SECRETVAL` are tracked);
//! - every validated value satisfies its declaration, checked here independently
//!   of the validator (lengths, leading dash, control characters, pattern, enum,
//!   integer bounds, IP version and publicness, hostname form, path form and
//!   `under`), every required parameter is present, nothing undeclared is;
//! - validating the canonical data again gives the same values (what a held
//!   request re-validates to);
//! - `redacted()` hides every secret;
//! - the rendered argv is exactly the template with each placeholder replaced by
//!   a validated value (a reference renderer below), one element per template
//!   element, and no secret ever reaches it.
#![no_main]

use std::net::IpAddr;
use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use regent_config::{
    check_hostname, non_public_reason, validate_data, Config, IpVersion, OperationDecl,
    ParamKind, Params,
};
use serde_json::Value;

const MARKER: &str = "SECRETVAL";

const CONFIG: &str = r#"
[service]
socket = "/run/regent-fuzz/regent.sock"

[operations.text]
description = "free text, a pattern, a leading dash, an optional with a default"
command = ["/bin/printf", "--msg={message}", "{tag}", "{{literal}}", "{dash}-{n}", "{caller.user}:{caller.uid}:{caller.gid}"]
params.message = { type = "string", min_len = 1, max_len = 40 }
params.tag = { type = "string", pattern = "[a-z]{1,8}", optional = true }
params.dash = { type = "string", pattern = "(?m)^-?[a-z0-9]+$", allow_leading_dash = true, optional = true }
params.n = { type = "integer", min = -5, max = 65535, default = 22 }

[operations.choice]
description = "enum, bool and a secret on stdin"
command = ["systemctl", "restart", "{service}", "--now={now}"]
params.service = { type = "enum", values = ["nginx", "postgresql", "a b", "-x"] }
params.now = { type = "bool", optional = true }
params.password = { type = "string", secret = true, min_len = 12, max_len = 128 }
stdin = "password"

[operations.net]
description = "addresses and names"
command = ["ufw", "allow", "from", "{ip}", "to", "{v6}", "via", "{any}", "host={host}"]
params.ip = { type = "ipv4", public = true }
params.v6 = { type = "ipv6", optional = true }
params.any = { type = "ip", optional = true, default = "8.8.8.8" }
params.host = { type = "hostname", optional = true }

[operations.files]
description = "paths"
command = ["find", "{dir}", "{other}", "-name={alt}", "-delete"]
params.dir = { type = "path", under = "/srv/data" }
params.other = { type = "path", optional = true }
params.alt = { type = "string", pattern = "a|b", default = "a" }

[operations.none]
description = "no parameters at all"
command = ["true"]
"#;

fn config() -> &'static Config {
    static C: OnceLock<Config> = OnceLock::new();
    C.get_or_init(|| regent_config::parse(CONFIG, "fuzz").expect("the fuzz config is valid"))
}

const USERS: &[&str] = &[
    "alice",
    "",
    "o'brien; rm -rf /",
    "{caller.uid}",
    "\u{202e}evil",
    "-rf",
];

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 {
        return;
    }
    let cfg = config();
    let ops: Vec<(&String, &OperationDecl)> = cfg.operations.iter().collect();
    let (name, op) = ops[input[0] as usize % ops.len()];
    let caller = regent_model::Principal::unix(
        None,
        u32::from(input[1]) * 1000,
        u32::from(input[1]),
        Some(USERS[input[1] as usize % USERS.len()].to_string()),
    );
    let Ok(data) = serde_json::from_slice::<Value>(&input[2..]) else {
        return;
    };
    let marked = marked_values(&data);

    let params = match validate_data(op, &data) {
        Err(e) => {
            // The reason never holds a value; the field is a name (an unknown
            // key is shown, safely, by design).
            for v in &marked {
                assert!(
                    !e.reason.contains(v.as_str()),
                    "{name}: the error echoes a value"
                );
            }
            let declared = op.params.contains_key(&e.field) || e.field == "data";
            if !declared {
                assert!(e.reason == "unknown field", "{name}: {e}");
                assert!(!e.field.chars().any(char::is_control), "control in {e:?}");
                assert!(e.field.chars().count() <= 67, "a long field name shown");
            }
            return;
        }
        Ok(p) => p,
    };

    for (k, v) in params.iter() {
        let spec = op.params.get(k).expect("only declared parameters");
        check_value(name, k, &spec.kind, v.as_str());
    }
    for (k, spec) in &op.params {
        if !spec.is_optional() {
            assert!(params.get(k).is_some(), "{name}: required {k} missing");
        }
        if spec.default.is_some() {
            assert!(
                params.get(k).is_some(),
                "{name}: default of {k} not applied"
            );
        }
    }

    // The held form re-validates to the same values.
    let again = validate_data(op, &params.to_json()).expect("canonical data validates");
    let a: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k, v.as_str())).collect();
    let b: Vec<(&str, &str)> = again.iter().map(|(k, v)| (k, v.as_str())).collect();
    assert_eq!(a, b, "{name}: canonical data validates differently");

    // Secrets are hidden in what is logged and shown.
    let redacted = params.redacted();
    let debug = format!("{params:?}");
    for (k, v) in params.iter() {
        if v.is_secret() {
            assert_eq!(redacted[k], Value::String("<redacted>".into()));
            let elsewhere = params
                .iter()
                .any(|(_, o)| !o.is_secret() && o.as_str().contains(v.as_str()));
            if v.as_str().contains(MARKER) && !elsewhere {
                assert!(!debug.contains(v.as_str()), "{name}: secret {k} in Debug");
                assert!(!redacted.to_string().contains(v.as_str()));
            }
        }
    }

    let argv = op.command.render(&params, &caller);
    assert_eq!(argv, reference_render(op, &params, &caller), "{name}: argv");
    assert!(argv.len() <= op.command.len());
    assert_eq!(argv.first().map(String::as_str), Some(op.command.program()));
    for (k, v) in params.iter() {
        if v.is_secret() && v.as_str().contains(MARKER) {
            assert!(
                !argv.iter().any(|a| a.contains(v.as_str())),
                "{name}: secret {k} in argv"
            );
        }
    }
    for a in &argv {
        assert!(!a.contains('\0'), "{name}: NUL in argv");
    }
});

/// String values in `data` (at any depth) that carry the marker.
fn marked_values(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::String(s) if s.contains(MARKER) => out.push(s.clone()),
            Value::Array(a) => stack.extend(a),
            Value::Object(m) => stack.extend(m.values()),
            _ => {}
        }
    }
    out
}

/// The declaration's promises about a validated value, checked from scratch.
fn check_value(op: &str, name: &str, kind: &ParamKind, text: &str) {
    let at = format!("{op}.{name}");
    assert!(!text.contains('\0'), "{at}: NUL");
    match kind {
        ParamKind::String {
            pattern,
            min_len,
            max_len,
            allow_leading_dash,
        } => {
            let n = text.chars().count();
            assert!(n >= *min_len && n <= *max_len, "{at}: length {n}");
            assert!(*allow_leading_dash || !text.starts_with('-'), "{at}: dash");
            match pattern {
                Some(p) => assert!(p.is_match(text), "{at}: pattern"),
                None => assert!(!text.chars().any(char::is_control), "{at}: control"),
            }
        }
        ParamKind::Enum { values } => assert!(values.iter().any(|v| v == text), "{at}"),
        ParamKind::Integer { min, max } => {
            let n: i64 = text.parse().expect("an integer");
            assert!(
                min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m),
                "{at}"
            );
            assert_eq!(n.to_string(), text, "{at}: not canonical");
        }
        ParamKind::Bool => assert!(text == "true" || text == "false", "{at}"),
        ParamKind::Ip { version, public } => {
            let addr: IpAddr = text.parse().expect("an address");
            assert_eq!(addr.to_string(), text, "{at}: not canonical");
            match version {
                IpVersion::V4 => assert!(addr.is_ipv4(), "{at}"),
                IpVersion::V6 => assert!(addr.is_ipv6(), "{at}"),
                IpVersion::Any => {}
            }
            if *public {
                assert!(non_public_reason(addr).is_none(), "{at}: not public");
            }
        }
        ParamKind::Timezone => {
            assert!(
                !text.is_empty() && !text.contains("..") && !text.starts_with('/'),
                "{at}: not a zone name"
            );
        }
        ParamKind::Hostname => {
            assert_eq!(check_hostname(text).as_deref(), Ok(text), "{at}");
            assert!(!text.chars().any(|c| c.is_ascii_uppercase()), "{at}");
            assert!(text.parse::<IpAddr>().is_err(), "{at}: an address");
        }
        ParamKind::Path { under, .. } => {
            assert!(text.starts_with('/'), "{at}: relative");
            assert!(text == "/" || !text.ends_with('/'), "{at}: trailing slash");
            assert!(!text.contains("//"), "{at}: empty component");
            for c in text.split('/') {
                assert!(c != "." && c != "..", "{at}: dot component");
            }
            if let Some(u) = under {
                assert!(Path::new(text).starts_with(u), "{at}: outside under");
            }
        }
    }
}

/// The documented rendering, written from the template as `Display` shows it:
/// `{{`/`}}` are braces, `{name}` a value; an element naming an absent
/// parameter is left out; every other element is exactly one argv element.
fn reference_render(op: &OperationDecl, params: &Params, caller: &regent_model::Principal) -> Vec<String> {
    let shown: Vec<String> = serde_json::from_str(&op.command.to_string()).expect("a JSON array");
    let mut argv = Vec::new();
    'elements: for element in shown {
        let mut out = String::new();
        let mut chars = element.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    out.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    out.push('}');
                }
                '{' => {
                    let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    match name.as_str() {
                        "caller.uid" => out.push_str(&caller.uid.to_string()),
                        "caller.gid" => out.push_str(&caller.gid.to_string()),
                        "caller.user" => out.push_str(&caller.user_or_uid()),
                        n => match params.get(n) {
                            Some(v) if v.is_secret() => out.push_str("<redacted>"),
                            Some(v) => out.push_str(v.as_str()),
                            None => continue 'elements,
                        },
                    }
                }
                c => out.push(c),
            }
        }
        argv.push(out);
    }
    argv
}
