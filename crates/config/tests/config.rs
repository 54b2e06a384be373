//! Config parsing, validation and diagnostics, end to end through the public API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use regent_config::*;

fn errors(text: &str) -> Vec<String> {
    match parse(text, "t.toml") {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

fn one_error(text: &str) -> String {
    let e = errors(text);
    assert_eq!(e.len(), 1, "expected exactly one error, got {e:#?}");
    e.into_iter().next().unwrap()
}

#[test]
fn example_config_parses_with_every_feature() {
    let c = parse(example_config(), "example.toml").unwrap_or_else(|d| panic!("{d}"));
    let s = &c.service;
    assert_eq!(s.socket, PathBuf::from("/run/regent/regent.sock"));
    assert_eq!(s.socket_mode, 0o660);
    assert_eq!(s.socket_group, Some(Account::Name("regent".into())));
    assert_eq!(s.limits.max_line, 1 << 20);
    assert_eq!(s.admin_group, Some(Account::Name("regent-admins".into())));
    let smtp = s.smtp.as_ref().unwrap();
    assert_eq!((smtp.port, smtp.security), (587, SmtpSecurity::StartTls));

    let fw = c.operation("firewall-open").unwrap();
    assert!(matches!(
        fw.params["ip"].kind,
        ParamKind::Ip {
            version: IpVersion::V4,
            public: true
        }
    ));
    assert_eq!(fw.timeout, Duration::from_secs(10));
    assert_eq!(
        fw.exec.capabilities.as_deref(),
        Some(&[Capability::NET_ADMIN, Capability::NET_RAW][..])
    );
    let allow = fw.allow.as_ref().unwrap();
    assert_eq!(allow.users, vec![Account::Name("www-data".into())]);

    let pw = c.operation("web-password").unwrap();
    assert!(pw.params["password"].secret);
    assert_eq!(pw.stdin.as_deref(), Some("password"));
    assert_eq!(pw.auth, Stages::from_iter([Stage::Totp]));
    assert_eq!(pw.max_attempts, 3);

    let reboot = c.operation("reboot").unwrap();
    assert_eq!(
        reboot.auth,
        Stages::from_iter([Stage::Email, Stage::Approval])
    );
    assert_eq!(reboot.approvers, vec!["ops@example.org"]);

    let cc = c.operation("cache-clear").unwrap();
    assert_eq!(
        cc.exec.run_as,
        Some(RunAs {
            user: Account::Name("www-data".into()),
            group: Some(Account::Name("www-data".into()))
        })
    );
    assert_eq!(cc.exec.capabilities, Some(vec![]));
    let sb = cc.exec.sandbox.as_ref().unwrap();
    assert_eq!(sb.write, vec![PathBuf::from("/var/cache/myapp")]);
    assert_eq!(cc.exec.limits.memory, Some(256 << 20));
    assert_eq!(cc.exec.limits.cpu, Some(Duration::from_secs(30)));
    assert_eq!(cc.exec.concurrency, Some(1));
    assert_eq!(cc.exec.on_unsupported, OnUnsupported::Refuse);

    let j = c.operation("journal").unwrap();
    assert_eq!(j.output, OutputMode::Full);
    assert_eq!(j.max_output, 256 << 10);
    assert_eq!(j.params["lines"].default, Some(serde_json::json!(50)));
    for name in ["whoami", "echo", "firewall-close", "restart"] {
        assert!(c.operation(name).is_some(), "{name}");
    }
}

#[test]
fn demo_config_is_usable() {
    let c = demo_config(Path::new("/tmp/x/regent.sock"));
    assert_eq!(c.service.socket, PathBuf::from("/tmp/x/regent.sock"));
    assert!(c.service.store.starts_with("/tmp/x"));
    assert_eq!(c.operation("whoami").unwrap().command.program(), "id");
    let echo = c.operation("echo").unwrap();
    let ok = validate_data(echo, &serde_json::json!({"message": "Hello, world!"})).unwrap();
    let caller = Principal::unix(None, 1000, 1000, Some("alice".into()));
    assert_eq!(echo.command.render(&ok, &caller), ["echo", "Hello, world!"]);
    let bad = validate_data(
        echo,
        &serde_json::json!({"message": "rm -rf /; echo $HOME"}),
    );
    assert_eq!(bad.unwrap_err().field, "message");
    let dash = validate_data(echo, &serde_json::json!({"message": "-n"}));
    assert_eq!(dash.unwrap_err().field, "message");
    let kernel = c.operation("kernel").unwrap();
    assert_eq!(
        kernel.allow.as_ref().unwrap().groups,
        vec![Account::Name("regent-admins".into())]
    );
    let hello = c.operation("hello").unwrap();
    assert_eq!(
        hello.command.render(&Params::default(), &caller),
        ["echo", "hello alice, your uid is 1000 and gid 1000"]
    );
    assert!(c.operation("date").is_some());
}

#[test]
fn defaults_apply() {
    let c = parse("[operations.x]\ncommand = [\"true\"]\n", "t").unwrap();
    let s = &c.service;
    assert_eq!(s.socket, PathBuf::from("/run/regent/regent.sock"));
    assert_eq!(s.socket_mode, 0o660);
    assert_eq!(s.limits.max_line, 1 << 20);
    assert_eq!(s.limits.line_timeout, Duration::from_secs(10));
    assert_eq!(s.limits.idle_timeout, Duration::from_secs(60));
    assert_eq!(s.limits.max_connections, 512);
    assert_eq!(s.log_format, LogFormat::Text);
    assert_eq!(s.store, PathBuf::from("/var/lib/regent/pending.db"));
    assert!(!s.allow_self_approval);
    let op = &c.operations["x"];
    assert_eq!(op.timeout, Duration::from_secs(30));
    assert_eq!(op.output, OutputMode::Text);
    assert_eq!(op.pending_ttl, Duration::from_secs(600));
    assert_eq!(op.max_attempts, 5);
    assert_eq!(op.exec, ExecDecl::default());
    assert!(op.allow.is_none() && op.auth.is_empty() && op.description.is_empty());
    // An empty file is a valid config with no operations.
    assert!(parse("", "t").unwrap().operations.is_empty());
}

#[test]
fn unknown_type_diagnostic_has_location_and_path() {
    let text = "[operations.firewall-open]\ncommand = [\"ufw\", \"{ip}\"]\nparams.ip = { type = \"ipv5\" }\n";
    assert_eq!(
        one_error(text),
        "t.toml:3:22: operations.firewall-open.params.ip: unknown type 'ipv5' \
         (expected one of string, enum, integer, bool, ip, ipv4, ipv6, hostname, timezone, path)"
    );
}

#[test]
fn unknown_keys_are_errors_everywhere_with_location() {
    let text = r#"bogus = 1
[service]
sockett = "/run/x.sock"
[service.smtp]
host = "localhost"
from = "a@localhost"
hots = "x"
[operations.x]
command = ["echo", "{a}"]
comand = ["oops"]
params.a = { type = "string", patern = "x" }
limits = { cpu = "1s", mem = "1G" }
allow = { user = ["root"] }
run_as = { user = "nobody", grop = "x" }
"#;
    let e = errors(text);
    let want = [
        "t.toml:1:1: bogus: unknown key 'bogus' (expected one of: service, operations)",
        "t.toml:3:1: service.sockett: unknown key 'sockett' (did you mean 'socket'?)",
        "t.toml:7:1: service.smtp.hots: unknown key 'hots'",
        "t.toml:10:1: operations.x.comand: unknown key 'comand' (did you mean 'command'?)",
        "t.toml:11:31: operations.x.params.a.patern: unknown key 'patern'",
        "t.toml:12:24: operations.x.limits.mem: unknown key 'mem'",
        "t.toml:13:11: operations.x.allow.user: unknown key 'user'",
        "t.toml:14:29: operations.x.run_as.grop: unknown key 'grop'",
    ];
    for w in want {
        assert!(
            e.iter().any(|l| l.starts_with(w)),
            "missing {w:?} in {e:#?}"
        );
    }
    // The allow table with only an unknown key also lists nobody: one more error.
    assert!(e.len() >= want.len(), "{e:#?}");
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let text = r#"[service]
socket = "relative.sock"
socket_mode = 660
line_timeout = 10
log_format = "xml"
[operations.a]
command = []
[operations.b]
command = ["x"]
timeout = "10 parsecs"
output = "yaml"
[operations."regent.ops"]
command = ["true"]
[operations.Bad_Name]
command = ["true"]
"#;
    let e = errors(text);
    let want = [
        (
            "t.toml:2:10: service.socket: path must be an absolute path",
            "",
        ),
        (
            "t.toml:3:15: service.socket_mode: write the mode as an octal string",
            "",
        ),
        (
            "t.toml:4:16: service.line_timeout: a duration needs a unit",
            "",
        ),
        ("t.toml:5:14: service.log_format: unknown value 'xml'", ""),
        ("t.toml:7:11: operations.a.command: command is empty", ""),
        ("t.toml:10:11: operations.b.timeout:", ""),
        (
            "t.toml:11:10: operations.b.output: unknown value 'yaml'",
            "",
        ),
        (
            "t.toml:12:13: operations.\"regent.ops\": operation name 'regent.ops' is reserved",
            "",
        ),
        (
            "t.toml:14:13: operations.Bad_Name: invalid operation name",
            "",
        ),
    ];
    for (w, _) in want {
        assert!(
            e.iter().any(|l| l.starts_with(w)),
            "missing {w:?} in {e:#?}"
        );
    }
    assert_eq!(e.len(), want.len(), "{e:#?}");
}

#[test]
fn syntax_errors_have_locations() {
    let e = errors("[service]\nsocket = \"/x\nfoo = 1\n");
    assert!(e[0].starts_with("t.toml:2:"), "{e:?}");
    assert!(e[0].contains("TOML syntax"), "{e:?}");
    let dup = errors("[operations.x]\ncommand = [\"a\"]\ncommand = [\"b\"]\n");
    assert!(dup[0].starts_with("t.toml:3:"), "{dup:?}");
}

#[test]
fn unused_param_is_an_error() {
    let e = one_error("[operations.x]\ncommand = [\"echo\"]\nparams.msg = { type = \"string\" }\n");
    assert_eq!(
        e,
        "t.toml:3:8: operations.x.params.msg: parameter 'msg' is declared but used neither in command nor as stdin"
    );
}

#[test]
fn secret_in_argv_is_refused_and_stdin_accepted() {
    let e = one_error(
        "[operations.x]\ncommand = [\"chpw\", \"--password={pw}\"]\nparams.pw = { type = \"string\", secret = true }\n",
    );
    assert!(
        e.starts_with("t.toml:2:20: operations.x.command[1]: secret parameter 'pw' must not appear in the command line"),
        "{e}"
    );
    let ok = parse(
        "[operations.x]\ncommand = [\"chpw\"]\nparams.pw = { type = \"string\", secret = true }\nstdin = \"pw\"\n",
        "t",
    )
    .unwrap();
    assert_eq!(ok.operations["x"].stdin.as_deref(), Some("pw"));
}

#[test]
fn command_rules() {
    let cases = [
        (r#"command = ["bin/ls"]"#, "t.toml:2:12: operations.x.command[0]: the program must be an absolute path or a bare name"),
        (r#"command = ["{p}"]"#, "t.toml:2:12: operations.x.command[0]: the program (command[0]) must not contain placeholders"),
        (r#"command = [""]"#, "t.toml:2:12: operations.x.command[0]: the program (command[0]) is empty"),
        (r#"command = ["/usr/../bin/sh"]"#, "t.toml:2:12: operations.x.command[0]: the program path must be a normalised"),
        (r#"command = ["ls", "{nope}"]"#, "t.toml:2:18: operations.x.command[1]: placeholder {nope} is not a declared parameter"),
        (r#"command = ["ls", "{caller.pid}"]"#, "t.toml:2:18: operations.x.command[1]: unknown placeholder {caller.pid}"),
        (r#"command = ["ls", "{a"]"#, "t.toml:2:18: operations.x.command[1]: unclosed '{'"),
        (r#"command = ["ls", "a}"]"#, "t.toml:2:18: operations.x.command[1]: unmatched '}'"),
        (r#"command = ["ls", 3]"#, "t.toml:2:18: operations.x.command[1]: expected a string, found an integer"),
        (r#"command = "ls -l""#, "t.toml:2:11: operations.x.command: expected an array, found a string"),
        (r#"command = ["/bin/sh", "-ec", "echo {a}"]
params.a = "hostname""#, "t.toml:2:11: operations.x.command: passing parameters to 'sh -c' would run them as shell code"),
        (r#"description = "no command""#, "t.toml:1:13: operations.x: missing required key 'command'"),
    ];
    for (line, want) in cases {
        let e = one_error(&format!("[operations.x]\n{line}\n"));
        assert!(e.starts_with(want), "{line}\n got: {e}\nwant: {want}");
    }
    // A shell running a script with parameters as positional arguments is fine.
    assert!(parse(
        "[operations.x]\ncommand = [\"sh\", \"/usr/local/lib/x.sh\", \"{a}\"]\nparams.a = \"hostname\"\n",
        "t"
    )
    .is_ok());
    // Literal braces and absolute programs are fine.
    let c = parse(
        "[operations.x]\ncommand = [\"/usr/bin/printf\", \"{{}}\"]\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.operations["x"].command.program(), "/usr/bin/printf");
}

#[test]
fn param_declaration_errors() {
    let cases = [
        (
            r#"params.p = { type = "string", pattern = "(" }"#,
            "operations.x.params.p.pattern: invalid pattern",
        ),
        (
            r#"params.p = { type = "string", min_len = 5, max_len = 2 }"#,
            "operations.x.params.p.max_len: max_len is smaller than min_len",
        ),
        (
            r#"params.p = { type = "enum", values = [] }"#,
            "operations.x.params.p.values: an enum needs at least one value",
        ),
        (
            r#"params.p = { type = "enum" }"#,
            "operations.x.params.p: missing required key 'values'",
        ),
        (
            r#"params.p = "enum""#,
            "operations.x.params.p: type 'enum' needs values",
        ),
        (
            r#"params.p = { type = "enum", values = ["a", "a"] }"#,
            "operations.x.params.p.values[1]: 'a' is listed twice",
        ),
        (
            r#"params.p = { type = "integer", min = 5, max = 1 }"#,
            "operations.x.params.p.max: max is smaller than min",
        ),
        (
            r#"params.p = { type = "integer", pattern = "x" }"#,
            "operations.x.params.p.pattern: key 'pattern' does not apply to type 'integer'",
        ),
        (
            r#"params.p = { type = "path", under = "srv" }"#,
            "operations.x.params.p.under: path must be an absolute path",
        ),
        (
            r#"params.p = { type = "path", under = "/srv/../etc" }"#,
            "operations.x.params.p.under: path must not contain '..'",
        ),
        (
            r#"params.p = { type = "ipv4", public = true, default = "10.0.0.1" }"#,
            "operations.x.params.p.default: invalid default: not a public IPv4 address",
        ),
        (
            r#"params.p = { type = "integer", default = 1.5 }"#,
            "operations.x.params.p.default: invalid default: expected an integer",
        ),
        (
            r#"params.p = { type = "string", secret = true, default = "hunter2" }"#,
            "operations.x.params.p.default: a secret parameter cannot have a default",
        ),
        (
            r#"params.p = { description = "no type" }"#,
            "operations.x.params.p: missing required key 'type'",
        ),
        (
            r#"params.p = { type = "bool", optional = "yes" }"#,
            "operations.x.params.p.optional: expected true or false, found a string",
        ),
        (
            r#"params."bad name" = "string""#,
            "operations.x.params.\"bad name\": invalid parameter name",
        ),
    ];
    for (line, want) in cases {
        let text = format!("[operations.x]\ncommand = [\"echo\", \"{{p}}\"]\n{line}\n");
        let e = errors(&text);
        assert!(
            e.iter()
                .any(|l| l.contains(want) && l.starts_with("t.toml:3:")),
            "{line}\n got: {e:#?}\nwant: {want}"
        );
    }
    // Shorthand type and defaults are accepted.
    let c = parse(
        "[operations.x]\ncommand = [\"ping\", \"{host}\", \"{n}\"]\nparams.host = \"hostname\"\nparams.n = { type = \"integer\", default = 3, min = 1 }\n",
        "t",
    )
    .unwrap();
    let op = &c.operations["x"];
    assert!(matches!(op.params["host"].kind, ParamKind::Hostname));
    assert!(op.params["n"].is_optional());
}

#[test]
fn auth_and_exec_declaration_errors() {
    let cases = [
        (
            r#"auth = ["sms"]"#,
            "operations.x.auth[0]: unknown authorization method 'sms'",
        ),
        (
            r#"auth = ["totp", "totp"]"#,
            "operations.x.auth[1]: 'totp' is listed twice",
        ),
        (
            r#"auth = ["email"]"#,
            "operations.x.auth: the 'email' method needs approvers",
        ),
        (
            r#"approvers = ["a@example.org"]"#,
            "operations.x.approvers: approvers receive the codes of the 'email' method",
        ),
        (
            r#"approve = { groups = ["wheel"] }"#,
            "operations.x.approve: approve only applies to the 'approval' method",
        ),
        (
            r#"pending_ttl = "5m""#,
            "operations.x.pending_ttl: has no effect: the operation has no auth stages",
        ),
        (r#"max_attempts = 0"#, "operations.x.max_attempts:"),
        (
            r#"capabilities = ["CAP_NET_ADMINN"]"#,
            "operations.x.capabilities[0]: unknown capability 'CAP_NET_ADMINN'",
        ),
        (
            r#"capabilities = ["net_admin", "CAP_NET_ADMIN"]"#,
            "operations.x.capabilities[1]: CAP_NET_ADMIN is listed twice",
        ),
        (
            r#"sandbox = { read = [] }"#,
            "operations.x.sandbox: a sandbox with no read or write paths",
        ),
        (
            r#"sandbox = { read = ["usr"] }"#,
            "operations.x.sandbox.read[0]: path must be an absolute path",
        ),
        (
            r#"sandbox = { read = ["/usr"], allow = ["unix", "udp"] }"#,
            "operations.x.sandbox.allow[1]: unknown sandbox opt-in 'udp' (expected one of: metadata, unix, tcp, signals)",
        ),
        (
            r#"sandbox = { read = ["/usr"], allow = ["tcp", "tcp"] }"#,
            "operations.x.sandbox.allow[1]: tcp is listed twice",
        ),
        (
            r#"limits = { memory = "lots" }"#,
            "operations.x.limits.memory: 'lots' is not a size",
        ),
        (
            r#"limits = { cpu = "500ms" }"#,
            "operations.x.limits.cpu: must be at least 1000ms",
        ),
        (
            r#"on_unsupported = "ignore""#,
            "operations.x.on_unsupported: unknown value 'ignore'",
        ),
        (
            r#"concurrency = 0"#,
            "operations.x.concurrency: must be between 1",
        ),
        (
            r#"run_as = "a b""#,
            "operations.x.run_as: 'a b' is not a valid user or group name",
        ),
        (r#"run_as = true"#, "operations.x.run_as: expected \"user\""),
        (
            r#"allow = {}"#,
            "operations.x.allow: lists no users and no groups",
        ),
        (
            r#"allow = { users = ["root", -1] }"#,
            "operations.x.allow.users[1]: id -1 is out of range",
        ),
        (
            r#"timeout = "0s""#,
            "operations.x.timeout: must be at least 1ms",
        ),
        (
            r#"max_output = 0"#,
            "operations.x.max_output: must be at least 1 bytes",
        ),
    ];
    for (line, want) in cases {
        let text = format!("[operations.x]\ncommand = [\"true\"]\n{line}\n");
        let e = errors(&text);
        assert!(
            e.iter()
                .any(|l| l.contains(want) && l.starts_with("t.toml:3:")),
            "{line}\n got: {e:#?}\nwant: {want}"
        );
    }
    let e = errors(
        "[operations.x]\ncommand = [\"true\"]\nauth = [\"email\"]\napprovers = [\"a@example.org\"]\n",
    );
    assert!(e[0].contains("needs a [service.smtp] table"), "{e:?}");
}

#[test]
fn exec_forms_parse() {
    let c = parse(
        r#"
[operations.a]
command = ["true"]
run_as = "nobody:nogroup"
capabilities = ["cap_net_admin", "SYS_TIME"]
on_unsupported = "warn"
[operations.b]
command = ["true"]
run_as = 65534
[operations.c]
command = ["true"]
run_as = { user = "65534", group = 65534 }
auth = ["approval"]
approve = { users = ["root"], groups = ["wheel"] }
pending_ttl = "1h"
"#,
        "t",
    )
    .unwrap_or_else(|d| panic!("{d}"));
    let a = &c.operations["a"].exec;
    assert_eq!(
        a.run_as,
        Some(RunAs {
            user: Account::Name("nobody".into()),
            group: Some(Account::Name("nogroup".into()))
        })
    );
    assert_eq!(
        a.capabilities,
        Some(vec![
            Capability::NET_ADMIN,
            Capability::parse("CAP_SYS_TIME").unwrap()
        ])
    );
    assert_eq!(a.on_unsupported, OnUnsupported::Warn);
    assert_eq!(
        c.operations["b"].exec.run_as,
        Some(RunAs {
            user: Account::Id(65534),
            group: None
        })
    );
    let op_c = &c.operations["c"];
    assert_eq!(
        op_c.exec.run_as,
        Some(RunAs {
            user: Account::Id(65534),
            group: Some(Account::Id(65534))
        })
    );
    assert_eq!(op_c.pending_ttl, Duration::from_secs(3600));
    assert_eq!(
        op_c.approve.as_ref().unwrap().users,
        vec![Account::Id(0)]
            .into_iter()
            .map(|_| Account::Name("root".into()))
            .collect::<Vec<_>>()
    );
}

#[test]
fn service_values_parse() {
    let c = parse(
        r#"
[service]
socket_mode = 0o600
socket_owner = 0
socket_group = "33"
max_line = 65536
log_format = "json"
command_path = "/usr/bin:/bin"
[service.smtp]
host = "127.0.0.1"
port = 2525
security = "none"
from = "regent@localhost"
[service.tcp]
listen = "127.0.0.1:8443"
cert = "/etc/regent/cert.pem"
key = "/etc/regent/key.pem"
client_ca = "/etc/regent/clients.pem"
"#,
        "t",
    )
    .unwrap_or_else(|d| panic!("{d}"));
    let s = &c.service;
    assert_eq!(s.socket_mode, 0o600);
    assert_eq!(s.socket_owner, Some(Account::Id(0)));
    assert_eq!(s.socket_group, Some(Account::Id(33)));
    assert_eq!(s.limits.max_line, 65536);
    assert_eq!(s.log_format, LogFormat::Json);
    assert_eq!(s.command_path, "/usr/bin:/bin");
    let smtp = s.smtp.as_ref().unwrap();
    assert_eq!(
        (smtp.host.as_str(), smtp.port, smtp.security),
        ("127.0.0.1", 2525, SmtpSecurity::None)
    );
    let tcp = s.tcp.as_ref().unwrap();
    assert_eq!(tcp.listen.len(), 1);
    assert_eq!(tcp.listen[0].port(), 8443);
    assert_eq!(tcp.handshake_timeout, std::time::Duration::from_secs(10));
    assert_eq!(tcp.max_connections, 256);
    assert_eq!(tcp.crl, None);

    let e = errors(
        "[service]\nsocket_mode = \"4755\"\ncommand_path = \"bin:/usr/bin\"\n[service.smtp]\nhost = \"x\"\nsecurity = \"none\"\nfrom = \"a@b\"\ncredentials_file = \"/etc/c\"\n",
    );
    assert!(
        e.iter().any(|l| l
            .starts_with("t.toml:2:15: service.socket_mode: '4755' is not an octal mode")
            || l.starts_with("t.toml:2:15: service.socket_mode: mode 4755")),
        "{e:#?}"
    );
    assert!(
        e.iter()
            .any(|l| l.starts_with("t.toml:3:16: service.command_path:")),
        "{e:#?}"
    );
    assert!(
        e.iter().any(|l| l
            .contains("service.smtp.credentials_file: refusing to send credentials without TLS")),
        "{e:#?}"
    );
    let e = one_error("[service.smtp]\nhost = \"x\"\n");
    assert_eq!(e, "t.toml:1:10: service.smtp: missing required key 'from'");
}

#[test]
fn load_reads_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("regent.toml");
    std::fs::write(&p, example_config()).unwrap();
    let c = load(&p).unwrap_or_else(|d| panic!("{d}"));
    assert!(c.operation("whoami").is_some());

    std::fs::write(&p, "[operations.x]\ncommand = [\"true\"]\nfoo = 1\n").unwrap();
    let d = load(&p).unwrap_err();
    assert_eq!(d.len(), 1);
    assert_eq!(d.0[0].line(), 3);
    assert_eq!(d.0[0].column(), 1);
    assert!(d.to_string().starts_with(&format!(
        "{}:3:1: operations.x.foo: unknown key",
        p.display()
    )));

    let missing = load(&dir.path().join("nope.toml")).unwrap_err();
    assert!(
        missing.to_string().contains("nope.toml: cannot read"),
        "{missing}"
    );
    assert_eq!(missing.0[0].location, None);

    std::fs::write(&p, b"\xff\xfe").unwrap();
    assert!(load(&p)
        .unwrap_err()
        .to_string()
        .contains("not valid UTF-8"));
}

#[test]
fn pending_caps_parse_default_and_are_bounded() {
    let c = parse(
        "[operations.x]\ncommand = [\"true\"]\nauth = [\"approval\"]\n",
        "t",
    )
    .unwrap();
    assert_eq!(c.service.max_pending, DEFAULT_MAX_PENDING);
    assert_eq!(c.service.max_pending_per_uid, DEFAULT_MAX_PENDING_PER_UID);
    assert_eq!(
        c.operations["x"].max_pending_per_uid,
        DEFAULT_OP_MAX_PENDING_PER_UID
    );
    let c = parse(
        "[service]\nmax_pending = 10\nmax_pending_per_uid = 3\n[operations.x]\ncommand = [\"true\"]\nauth = [\"approval\"]\nmax_pending_per_uid = 2\n",
        "t",
    )
    .unwrap_or_else(|d| panic!("{d}"));
    assert_eq!(
        (c.service.max_pending, c.service.max_pending_per_uid),
        (10, 3)
    );
    assert_eq!(c.operations["x"].max_pending_per_uid, 2);
    let e = one_error("[service]\nmax_pending = 0\n");
    assert!(e.starts_with("t.toml:2:15: service.max_pending:"), "{e}");
    let e = one_error(
        "[operations.x]\ncommand = [\"true\"]\nauth = [\"approval\"]\nmax_pending_per_uid = -1\n",
    );
    assert!(e.contains("operations.x.max_pending_per_uid"), "{e}");
}

const TWO_OPS: &str = r#"
[operations.host-reboot]
command = ["/bin/true"]
[operations.web-restart]
command = ["/bin/true"]
"#;

#[test]
fn sockets_each_offer_their_own_operations() {
    let text = format!(
        r#"[service]
socket = "/run/regent/regent.sock"
[[service.sockets]]
path = "/run/regent/web/regent.sock"
mode = "0666"
group = "www-data"
operations = ["web-restart"]
[[service.sockets]]
path = "/run/regent/admin.sock"
operations = []
admin = true
{TWO_OPS}"#
    );
    let c = parse(&text, "t.toml").unwrap();
    let all = c.service.all_sockets();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].path, Path::new("/run/regent/regent.sock"));
    assert_eq!((all[0].operations.clone(), all[0].admin), (None, true));
    let web = &all[1];
    assert_eq!(web.path, Path::new("/run/regent/web/regent.sock"));
    assert_eq!(web.mode, 0o666);
    assert_eq!(web.group, Some(Account::parse("www-data").unwrap()));
    assert_eq!(web.owner, None);
    assert_eq!(web.operations, Some(vec!["web-restart".to_string()]));
    assert!(!web.admin, "admin is off unless the entry says so");
    assert_eq!(all[2].mode, 0o660);
    assert_eq!(
        (all[2].operations.clone(), all[2].admin),
        (Some(vec![]), true)
    );
    // Without entries: the implicit first one only.
    let c = parse(TWO_OPS, "t.toml").unwrap();
    assert_eq!(c.service.all_sockets().len(), 1);
}

#[test]
fn socket_entry_errors_have_locations() {
    let e = errors(&format!(
        r#"[service]
socket = "/run/regent/regent.sock"
[[service.sockets]]
path = "/run/regent/c.sock"
operations = ["web-restrat", "nothing-like-it"]
[[service.sockets]]
path = "/run/regent/regent.sock"
operations = ["host-reboot"]
[[service.sockets]]
path = "/run/regent/d.sock"
operations = ["web-restart"]
[[service.sockets]]
path = "/run/regent/c.sock"
operations = ["web-restart"]
[[service.sockets]]
mode = "0600"
{TWO_OPS}"#
    ));
    let want = [
        "t.toml:5:15: service.sockets[0].operations[0]: no operation \"web-restrat\" is declared (did you mean 'web-restart'?)",
        "t.toml:5:30: service.sockets[0].operations[1]: no operation \"nothing-like-it\" is declared",
        "t.toml:7:8: service.sockets[1].path: /run/regent/regent.sock is already the path of another socket",
        "t.toml:13:8: service.sockets[3].path: /run/regent/c.sock is already the path of another socket",
        "t.toml:15:1: service.sockets[4]: missing required key 'path'",
        "t.toml:15:1: service.sockets[4]: missing required key 'operations'",
    ];
    for w in want {
        assert!(
            e.iter().any(|l| l.starts_with(w)),
            "missing {w:?} in {e:#?}"
        );
    }
    assert!(
        !e.iter()
            .any(|l| l.contains("nothing-like-it\" is declared (")),
        "{e:#?}"
    );
}

#[test]
fn a_socket_entry_with_bad_values_reports_each_at_its_place() {
    let e = errors(&format!(
        r#"[[service.sockets]]
path = "relative.sock"
mode = 666
owner = 1.5
operations = ["web-restart"]
{TWO_OPS}"#
    ));
    let want = [
        "t.toml:2:8: service.sockets[0].path: path must be an absolute path",
        "t.toml:3:8: service.sockets[0].mode: write the mode as an octal string",
        "t.toml:4:9: service.sockets[0].owner:",
    ];
    for w in want {
        assert!(
            e.iter().any(|l| l.starts_with(w)),
            "missing {w:?} in {e:#?}"
        );
    }
}

#[test]
fn a_misspelt_socket_key_gets_a_suggestion() {
    let e = one_error(&format!(
        "[[service.sockets]]\npath = \"/run/r/a.sock\"\noperations = []\nadmn = true\n{TWO_OPS}"
    ));
    assert!(
        e.starts_with(
            "t.toml:4:1: service.sockets[0].admn: unknown key 'admn' (did you mean 'admin'?)"
        ),
        "{e}"
    );
}

#[test]
fn tcp_with_mutual_tls_parses_and_each_bad_value_is_located() {
    let c = parse(
        r#"
[service]
admin_clients = ["ops.example.org"]
[service.tcp]
listen = ["0.0.0.0:8443", "[::]:8443"]
cert = "/etc/regent/cert.pem"
key = "/etc/regent/key.pem"
client_ca = "/etc/regent/clients.pem"
crl = "/etc/regent/crl.pem"
handshake_timeout = "3s"
max_connections = 9
[operations.who]
command = ["echo", "{caller.client}"]
allow = { users = ["root"], clients = ["panel", "ops.example.org"] }
"#,
        "t",
    )
    .unwrap_or_else(|d| panic!("{d}"));
    let tcp = c.service.tcp.as_ref().unwrap();
    assert_eq!(tcp.listen.len(), 2);
    assert!(tcp.listen[0].is_ipv4() && tcp.listen[1].is_ipv6());
    assert_eq!(
        tcp.crl.as_deref(),
        Some(std::path::Path::new("/etc/regent/crl.pem"))
    );
    assert_eq!(tcp.handshake_timeout, std::time::Duration::from_secs(3));
    assert_eq!(tcp.max_connections, 9);
    assert_eq!(c.service.admin_clients, vec!["ops.example.org".to_string()]);
    let allow = c.operation("who").unwrap().allow.as_ref().unwrap();
    assert_eq!(
        allow.clients,
        vec!["panel".to_string(), "ops.example.org".to_string()]
    );

    let base = "[service.tcp]\ncert = \"/c\"\nkey = \"/k\"\nclient_ca = \"/a\"\n";
    let cases: &[(String, &str)] = &[
        (
            format!("{base}listen = \"localhost\"\n"),
            "t.toml:5:10: service.tcp.listen: expected an address:port",
        ),
        (
            format!("{base}listen = [\"127.0.0.1:1\", \"nope\"]\n"),
            "t.toml:5:26: service.tcp.listen: expected an address:port",
        ),
        (
            format!("{base}listen = [\"[::1]:1\", \"[::1]:1\"]\n"),
            "t.toml:5:22: service.tcp.listen: [::1]:1 is listed twice",
        ),
        (
            format!("{base}listen = []\n"),
            "t.toml:5:10: service.tcp.listen: lists no address",
        ),
        (
            format!("{base}listen = \"127.0.0.1:1\"\nhandshake_timeout = \"soon\"\n"),
            "t.toml:6:21: service.tcp.handshake_timeout:",
        ),
        (
            format!("{base}listen = \"127.0.0.1:1\"\nmax_connections = 0\n"),
            "t.toml:6:19: service.tcp.max_connections:",
        ),
        (
            format!("{base}listen = \"127.0.0.1:1\"\ncrl = \"crl.pem\"\n"),
            "t.toml:6:7: service.tcp.crl:",
        ),
        (
            "[service.tcp]\nlisten = \"127.0.0.1:1\"\ncert = \"/c\"\nkey = \"/k\"\n".into(),
            "t.toml:1:10: service.tcp: missing required key 'client_ca'",
        ),
        (
            "[service]\nadmin_clients = [\"ok\", \"not ok\"]\n".into(),
            "t.toml:2:24: service.admin_clients: a client name is",
        ),
        (
            "[operations.x]\ncommand = [\"true\"]\nallow = { clients = [\"-x\"] }\n".into(),
            "t.toml:3:22: operations.x.allow.clients: a client name is",
        ),
    ];
    for (text, want) in cases {
        let e = errors(text);
        assert!(
            e.iter().any(|l| l.starts_with(want)),
            "want {want:?} for\n{text}\ngot {e:#?}"
        );
    }
}

#[test]
fn an_operation_tls_clients_may_call_has_no_unix_identity_in_its_command() {
    let tcp = "[service.tcp]\nlisten = \"127.0.0.1:1\"\ncert = \"/c\"\nkey = \"/k\"\nclient_ca = \"/a\"\n";
    for (allow, refused) in [
        ("", true),
        ("allow = { clients = [\"panel\"] }\n", true),
        ("allow = { users = [\"root\"] }\n", false),
    ] {
        for ph in ["caller.uid", "caller.gid", "caller.user"] {
            let text = format!("{tcp}[operations.x]\ncommand = [\"echo\", \"{{{ph}}}\"]\n{allow}");
            match parse(&text, "t") {
                Ok(_) => assert!(!refused, "{text}"),
                Err(d) => {
                    let e = d.to_string();
                    assert!(refused, "{e}");
                    assert!(
                        e.contains("t:7:11: operations.x.command: uses {")
                            && e.contains("which a TLS client does not have"),
                        "{e}"
                    );
                }
            }
        }
    }
    // Without [service.tcp] no TLS client calls anything.
    parse(
        "[operations.x]\ncommand = [\"echo\", \"{caller.uid}\"]\n",
        "t",
    )
    .unwrap();
}

#[test]
fn module_operations_are_typed_declarations() {
    let c = parse(
        r#"
[operations.restart]
description = "Restart a web server"
service = { unit = "{unit}", action = "restart" }
params.unit = { type = "enum", values = ["nginx", "apache2"] }

[operations.install]
description = "Install an app"
packages = { install = ["{app}", "app-{app}-data"] }
params.app = { type = "enum", values = ["hello", "sl"] }
timeout = "5m"

[operations.status]
description = "Any package's status"
packages = { status = ["{name}"] }
params.name = { type = "string", pattern = "[a-z0-9]{2,20}" }
"#,
        "t.toml",
    )
    .unwrap();
    let r = &c.operations["restart"];
    assert_eq!(
        r.module,
        Some(ModuleDecl::Service(ServiceDecl {
            unit: "{unit}".into(),
            action: ServiceAction::Restart,
            backend: ServiceBackend::Auto,
        }))
    );
    assert_eq!(r.output, OutputMode::Json);
    assert_eq!(r.command.to_string(), r#"["regent", "module"]"#);
    assert_eq!(
        module_targets(r),
        [(
            "{unit}".to_string(),
            Targets::Names(vec!["nginx".into(), "apache2".into()])
        )]
    );
    let i = &c.operations["install"];
    let data = serde_json::json!({"app": "sl"});
    let params = validate_data(i, &data).unwrap();
    assert_eq!(
        module_plan(i, &params).unwrap().unwrap(),
        ModulePlan::Packages {
            action: PackagesAction::Install,
            names: vec!["sl".into(), "app-sl-data".into()],
            allowed: Some(
                ["app-hello-data", "app-sl-data", "hello", "sl"]
                    .map(String::from)
                    .to_vec()
            ),
        }
    );
    let s = &c.operations["status"];
    assert_eq!(
        module_targets(s),
        [("{name}".to_string(), Targets::Open(vec!["name".into()]))]
    );
    let params = validate_data(s, &serde_json::json!({"name": "hello"})).unwrap();
    assert!(matches!(
        module_plan(s, &params),
        Some(Ok(ModulePlan::Packages { allowed: None, .. }))
    ));
}

#[test]
fn module_declaration_errors_have_locations() {
    let op = "[operations.x]\ndescription = \"x\"\n";
    let enum_p = "params.u = { type = \"enum\", values = [\"a\"] }\n";
    let cases: &[(String, &str)] = &[
        (
            format!("{op}command = [\"true\"]\nservice = {{ unit = \"{{u}}\", action = \"stop\" }}\n{enum_p}"),
            "t.toml:4:1: operations.x.service: an operation has exactly one of command, service, packages, augeas ('command' is set too)",
        ),
        (
            format!("{op}service = {{ unit = \"{{u}}\", action = \"bounce\" }}\n{enum_p}"),
            "t.toml:3:36: operations.x.service.action: unknown value 'bounce' (expected one of: status, start, stop, restart, reload, enable, disable)",
        ),
        (
            format!("{op}service = {{ action = \"stop\" }}\n"),
            "t.toml:3:1: operations.x.service: missing required key 'unit'",
        ),
        (
            format!("{op}service = {{ unit = \"{{nope}}\", action = \"stop\" }}\n"),
            "t.toml:3:20: operations.x.service.unit: placeholder {nope} is not a declared parameter",
        ),
        (
            format!("{op}service = {{ unit = \"{{caller.user}}\", action = \"stop\" }}\n"),
            "t.toml:3:20: operations.x.service.unit: {caller.user} cannot fill a module's name",
        ),
        (
            format!("{op}service = {{ unit = \"{{u}}\", action = \"stop\" }}\n{enum_p}sandbox = {{ read = [\"/usr\"] }}\n"),
            "t.toml:5:1: operations.x.sandbox: a service operation cannot be confined with sandbox",
        ),
        (
            format!("{op}packages = {{ install = [\"{{u}}\"] }}\n{enum_p}output = \"text\"\n"),
            "t.toml:5:1: operations.x.output: a packages operation takes its input from its declaration and answers JSON",
        ),
        (
            format!("{op}packages = {{ install = [\"{{u}}\"], remove = [\"{{u}}\"] }}\n{enum_p}"),
            "t.toml:3:33: operations.x.packages.remove: takes exactly one of: install, remove, update, status ('install' is set too)",
        ),
        (
            format!("{op}packages = {{ install = [] }}\n"),
            "t.toml:3:24: operations.x.packages.install: names no package",
        ),
        (
            format!("{op}packages = {{ install = [\"x\"] }}\n{enum_p}"),
            "t.toml:4:8: operations.x.params.u: parameter 'u' is declared but used in no name of the module",
        ),
        (
            format!("{op}packages = {{ install = [\"{{pw}}\"] }}\nparams.pw = {{ type = \"string\", secret = true }}\n"),
            "t.toml:3:25: operations.x.packages.install[0]: secret parameter 'pw' cannot fill a module's name",
        ),
        (
            format!("{op}packages = {{ install = [\"app-{{u}}\"] }}\nparams.u = {{ type = \"enum\", values = [\"ok\", \"Bad\"] }}\n"),
            "t.toml:3:1: operations.x.packages: names what is no valid package name: \"app-Bad\"",
        ),
    ];
    for (text, want) in cases {
        let e = one_error(text);
        assert!(e.starts_with(want), "{text}\n got: {e}\nwant: {want}");
    }
}

#[test]
fn augeas_declarations_read_and_expand() {
    use regent_model::{AugAction, AugeasDecl, InsertPosition};
    let c = parse(
        r#"
[operations.ssh]
description = "SSH settings"
augeas = { lens = "Sshd", file = "/etc/ssh/sshd_config", set = { "Port" = "{port}", "Banner" = "{banner}", "PermitRootLogin" = "no" }, get = ["Port"] }
params.port = { type = "integer", min = 1024, max = 65535 }
params.banner = { type = "string", secret = true, optional = true }

[operations.hosts]
description = "Hosts"
params.host = { type = "enum", values = ["a.example.org", "b'x"] }
[operations.hosts.augeas]
lens = "Hosts.lns"
file = "/etc/hosts"
actions = [
  { insert = "01", after = "*[last()]" },
  { set = "01/canonical", value = "{host}" },
  { setm = "*", sub = "comment", value = "seen" },
  { move = "01", to = "02" },
  { remove = "*[canonical = '{host}']" },
  { match = "*" },
]
"#,
        "t.toml",
    )
    .unwrap();
    let set = |path: &str, value: &str| AugAction::Set {
        path: path.into(),
        value: value.into(),
    };
    let ssh = &c.operations["ssh"];
    // The table form keeps the order written; the shorthands apply set, then get.
    assert_eq!(
        ssh.module,
        Some(ModuleDecl::Augeas(AugeasDecl {
            lens: "Sshd.lns".into(),
            file: "/etc/ssh/sshd_config".into(),
            actions: vec![
                set("Port", "{port}"),
                set("Banner", "{banner}"),
                set("PermitRootLogin", "no"),
                AugAction::Get {
                    path: "Port".into()
                },
            ],
        }))
    );
    // An absent optional parameter leaves its action out; a secret value goes
    // along to be redacted from a diff.
    let params = validate_data(ssh, &serde_json::json!({"port": 2222})).unwrap();
    let Some(Ok(ModulePlan::Augeas {
        actions, secrets, ..
    })) = module_plan(ssh, &params)
    else {
        panic!("an augeas plan");
    };
    assert_eq!(actions.len(), 3);
    assert_eq!(actions[0], set("Port", "2222"));
    assert!(secrets.is_empty());
    let params = validate_data(
        ssh,
        &serde_json::json!({"port": 2222, "banner": "s3cret-b"}),
    )
    .unwrap();
    let Some(Ok(ModulePlan::Augeas { secrets, .. })) = module_plan(ssh, &params) else {
        panic!("an augeas plan");
    };
    assert_eq!(secrets, ["s3cret-b"]);

    let hosts = &c.operations["hosts"];
    let Some(ModuleDecl::Augeas(a)) = &hosts.module else {
        panic!("augeas");
    };
    assert_eq!(
        a.actions[0],
        AugAction::Insert {
            label: "01".into(),
            path: "*[last()]".into(),
            position: InsertPosition::After
        }
    );
    assert_eq!(a.actions.len(), 6);
    // A value that would change a path's structure names its parameter.
    let params = validate_data(hosts, &serde_json::json!({"host": "b'x"})).unwrap();
    let e = module_plan(hosts, &params).unwrap().unwrap_err();
    assert_eq!(e.field, "host");
    assert!(e.reason.contains("action 5 (remove)"), "{}", e.reason);
}
