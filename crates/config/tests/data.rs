//! Request data validation and template rendering through the public API.

use serde_json::json;

use regent_config::*;

fn op(text: &str) -> OperationDecl {
    let c = parse(text, "t.toml").unwrap_or_else(|d| panic!("{d}"));
    c.operations.into_values().next().unwrap()
}

fn alice() -> Principal {
    Principal::unix(None, 1000, 100, Some("alice".into()))
}

const FW: &str = r#"
[operations.fw]
command = ["ufw", "allow", "from", "{ip}", "to", "any", "port", "{port}"]
params.ip = { type = "ipv4", public = true }
params.port = { type = "integer", min = 1, max = 65535, default = 22 }
"#;

#[test]
fn data_shape_rules() {
    let fw = op(FW);
    let err = |d: serde_json::Value| validate_data(&fw, &d).unwrap_err().to_string();
    assert_eq!(err(json!("8.8.8.8")), "data: must be a JSON object");
    assert_eq!(err(json!([1])), "data: must be a JSON object");
    assert_eq!(err(json!(null)), "ip: missing required field");
    assert_eq!(err(json!({})), "ip: missing required field");
    assert_eq!(err(json!({"ip": null})), "ip: missing required field");
    assert_eq!(
        err(json!({"ip": "8.8.8.8", "extra": 1})),
        "extra: unknown field"
    );
    assert_eq!(err(json!({"ip": 8})), "ip: expected a string");
    assert_eq!(
        err(json!({"ip": "192.168.1.1"})),
        "ip: not a public IPv4 address (192.168.0.0/16 is private-use)"
    );
    assert_eq!(
        err(json!({"ip": "8.8.8.8", "port": "22"})),
        "port: expected an integer"
    );
    assert_eq!(
        err(json!({"ip": "8.8.8.8", "port": 22.5})),
        "port: expected an integer, not a fraction"
    );
    assert_eq!(
        err(json!({"ip": "8.8.8.8", "port": 0})),
        "port: must be between 1 and 65535"
    );
    // An unknown key from the client is shown bounded and without control characters.
    let long = format!("{}\n", "k".repeat(100));
    let e = validate_data(&fw, &json!({ long: 1 })).unwrap_err();
    assert_eq!(e.field, format!("{}...", "k".repeat(64)));

    let p = validate_data(&fw, &json!({"ip": "8.8.8.8"})).unwrap();
    assert_eq!(p.get("port").unwrap().as_str(), "22");
    assert_eq!(p.to_json(), json!({"ip": "8.8.8.8", "port": 22}));
    assert_eq!(
        fw.command.render(&p, &alice()),
        ["ufw", "allow", "from", "8.8.8.8", "to", "any", "port", "22"]
    );
    // Canonical data re-validates to the same thing (pending requests).
    let again = validate_data(&fw, &p.to_json()).unwrap();
    assert_eq!(again.to_json(), p.to_json());
}

#[test]
fn null_data_is_fine_without_required_params() {
    let w = op("[operations.w]\ncommand = [\"whoami\"]\n");
    assert!(validate_data(&w, &json!(null)).unwrap().is_empty());
    assert!(validate_data(&w, &json!({})).unwrap().is_empty());
    assert_eq!(
        validate_data(&w, &json!({"x": 1})).unwrap_err().to_string(),
        "x: unknown field"
    );
    assert_eq!(
        validate_data(&w, &json!(5)).unwrap_err().to_string(),
        "data: must be a JSON object"
    );
}

#[test]
fn render_never_splits_and_mixes_text() {
    let o = op(r#"
[operations.x]
command = ["printf", "%s|", "{msg}", "--to={msg}!", "{{literal}}", "{caller.user}:{caller.uid}:{caller.gid}"]
params.msg = { type = "string", pattern = ".*" }
"#);
    let nasty = "a b; rm -rf / $(id) `x` 'q' \"d\" | > <";
    let p = validate_data(&o, &json!({ "msg": nasty })).unwrap();
    let argv = o.command.render(&p, &alice());
    assert_eq!(
        argv,
        vec![
            "printf".to_string(),
            "%s|".into(),
            nasty.into(),
            format!("--to={nasty}!"),
            "{literal}".into(),
            "alice:1000:100".into(),
        ]
    );
    let ph: Vec<String> = o.command.placeholders().map(ToString::to_string).collect();
    assert_eq!(
        ph,
        ["msg", "msg", "caller.user", "caller.uid", "caller.gid"]
    );
    assert_eq!(
        o.command.to_string(),
        r#"["printf", "%s|", "{msg}", "--to={msg}!", "{{literal}}", "{caller.user}:{caller.uid}:{caller.gid}"]"#
    );
}

#[test]
fn absent_optional_param_drops_its_element() {
    let o = op(r#"
[operations.x]
command = ["journalctl", "--lines={n}", "{unit}", "-o", "cat"]
params.n = { type = "integer", optional = true }
params.unit = { type = "string", pattern = "[a-z]+", optional = true }
"#);
    let p = validate_data(&o, &json!({"unit": "nginx"})).unwrap();
    assert_eq!(
        o.command.render(&p, &alice()),
        ["journalctl", "nginx", "-o", "cat"]
    );
    let p = validate_data(&o, &json!({"n": 5, "unit": null})).unwrap();
    assert_eq!(
        o.command.render(&p, &alice()),
        ["journalctl", "--lines=5", "-o", "cat"]
    );
    assert_eq!(p.to_json(), json!({"n": 5}));
}

#[test]
fn secrets_are_redacted_everywhere() {
    let o = op(r#"
[operations.x]
command = ["chpasswd-like", "{user}"]
params.user = { type = "string", pattern = "[a-z]+" }
params.pw = { type = "string", secret = true, min_len = 4 }
stdin = "pw"
"#);
    let p = validate_data(&o, &json!({"user": "bob", "pw": "hunter2-SECRET"})).unwrap();
    assert_eq!(p.redacted(), json!({"user": "bob", "pw": "<redacted>"}));
    assert_eq!(p.to_json(), json!({"user": "bob", "pw": "hunter2-SECRET"}));
    assert_eq!(p.get("pw").unwrap().as_str(), "hunter2-SECRET");
    let dbg = format!("{p:?}");
    assert!(!dbg.contains("hunter2"), "{dbg}");
    assert!(dbg.contains("<redacted>") && dbg.contains("bob"), "{dbg}");
    assert_eq!(o.command.render(&p, &alice()), ["chpasswd-like", "bob"]);
    // A hand-built template cannot leak it into argv either.
    let t = Template::parse(&["x", "{pw}"]).unwrap();
    assert_eq!(t.render(&p, &alice()), ["x", "<redacted>"]);
    // Errors on a secret never contain its value.
    let e = validate_data(&o, &json!({"user": "bob", "pw": "S3\u{1}CRET"})).unwrap_err();
    assert_eq!(e.field, "pw");
    assert!(!e.to_string().contains("S3"), "{e}");
    // describe() for `regent ops` marks the secret and shows no default.
    let d = o.describe();
    assert_eq!(d["params"]["pw"]["secret"], json!(true));
    assert_eq!(d["params"]["user"]["pattern"], json!("[a-z]+"));
}

#[test]
fn every_type_through_an_operation() {
    let o = op(r#"
[operations.x]
command = ["t", "{s}", "{e}", "{i}", "{b}", "{ip}", "{v6}", "{h}", "{p}"]
params.s = { type = "string", pattern = "[a-z]{1,5}" }
params.e = { type = "enum", values = ["start", "stop"] }
params.i = { type = "integer", min = -10, max = 10 }
params.b = "bool"
params.ip = { type = "ip" }
params.v6 = { type = "ipv6", public = true }
params.h = "hostname"
params.p = { type = "path", under = "/srv" }
"#);
    let good = json!({
        "s": "abc", "e": "stop", "i": -10, "b": false, "ip": "10.0.0.1",
        "v6": "2606:4700:0:0::1", "h": "DB1.Example.org", "p": "/srv//a/./b/"
    });
    let p = validate_data(&o, &good).unwrap();
    assert_eq!(
        o.command.render(&p, &alice()),
        [
            "t",
            "abc",
            "stop",
            "-10",
            "false",
            "10.0.0.1",
            "2606:4700::1",
            "db1.example.org",
            "/srv/a/b"
        ]
    );
    let bad: &[(&str, serde_json::Value, &str)] = &[
        (
            "s",
            json!("abc\nrm"),
            "s: does not match the pattern [a-z]{1,5}",
        ),
        (
            "s",
            json!("abcdef"),
            "s: does not match the pattern [a-z]{1,5}",
        ),
        ("e", json!("restart"), "e: must be one of: start, stop"),
        ("i", json!(11), "i: must be between -10 and 10"),
        ("i", json!("1"), "i: expected an integer"),
        ("b", json!("false"), "b: expected true or false"),
        ("ip", json!("10.0.0.256"), "ip: not a valid IP address"),
        (
            "v6",
            json!("fd00::1"),
            "v6: not a public IPv6 address (fc00::/7 is unique local)",
        ),
        (
            "v6",
            json!("fe80::1"),
            "v6: not a public IPv6 address (fe80::/10 is link-local)",
        ),
        (
            "v6",
            json!("2001:db8::1"),
            "v6: not a public IPv6 address (2001:db8::/32 is documentation)",
        ),
        (
            "h",
            json!("db1.example.org."),
            "h: not a valid hostname: hostname must not end with a dot",
        ),
        ("p", json!("/srv/../etc/shadow"), "p: must not contain '..'"),
        ("p", json!("/srvx/a"), "p: must be under /srv"),
        ("p", json!("a/b"), "p: must be an absolute path"),
    ];
    for (field, value, want) in bad {
        let mut d = good.clone();
        d[*field] = value.clone();
        assert_eq!(
            validate_data(&o, &d).unwrap_err().to_string(),
            *want,
            "{field}={value}"
        );
    }
}

#[test]
fn check_paths_resolves_and_refuses_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let under = root.join("data");
    std::fs::create_dir(&under).unwrap();
    std::fs::write(under.join("f"), "x").unwrap();
    std::os::unix::fs::symlink("/etc", under.join("etc")).unwrap();
    let text = format!(
        "[operations.x]\ncommand = [\"cat\", \"{{p}}\"]\nparams.p = {{ type = \"path\", under = \"{}\", must_exist = true }}\n",
        under.display()
    );
    let o = op(&text);
    let mut ok = validate_data(&o, &json!({"p": format!("{}/./f", under.display())})).unwrap();
    check_paths(&o, &mut ok).unwrap();
    assert_eq!(
        ok.get("p").unwrap().as_str(),
        under.join("f").to_str().unwrap()
    );
    let mut esc =
        validate_data(&o, &json!({"p": format!("{}/etc/passwd", under.display())})).unwrap();
    assert_eq!(
        check_paths(&o, &mut esc).unwrap_err().to_string(),
        format!("p: not found under {}", under.display())
    );
    let mut gone =
        validate_data(&o, &json!({"p": format!("{}/missing", under.display())})).unwrap();
    assert_eq!(
        check_paths(&o, &mut gone).unwrap_err().to_string(),
        format!("p: not found under {}", under.display())
    );
}
