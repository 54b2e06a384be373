//! The config reader's two passes seen from outside: unknown keys in every
//! table, wrong types, duplicate keys, and what reaches a terminal.

use regent_config::parse;

fn errors(text: &str) -> Vec<String> {
    match parse(text, "t.toml") {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    }
}

fn assert_has(text: &str, want: &str) {
    let e = errors(text);
    assert!(
        e.iter().any(|l| l == want),
        "missing {want:?} for\n{text}\ngot {e:#?}"
    );
}

/// A misspelt key in each kind of table: reported at the key, under its path,
/// with the key it was probably meant to be.
#[test]
fn unknown_key_in_each_table_is_located_and_suggested() {
    let op = "[operations.x]\ncommand = [\"echo\", \"{p}\"]\n";
    let cases: &[(String, &str)] = &[
        (
            "servce = 1\n".into(),
            "t.toml:1:1: servce: unknown key 'servce' (did you mean 'service'?)",
        ),
        (
            "[service]\nmax_runz = 3\n".into(),
            "t.toml:2:1: service.max_runz: unknown key 'max_runz' (did you mean 'max_runs'?)",
        ),
        (
            "[service.smtp]\nhost = \"h\"\nfrom = \"a@b.org\"\n  prot = 25\n".into(),
            "t.toml:4:3: service.smtp.prot: unknown key 'prot' (did you mean 'port'?)",
        ),
        (
            "[service.tcp]\nlisten = \"127.0.0.1:1\"\ncert = \"/c\"\nkey = \"/k\"\nclient_cx = \"/x\"\n"
                .into(),
            "t.toml:5:1: service.tcp.client_cx: unknown key 'client_cx' (did you mean 'client_ca'?)",
        ),
        (
            "[operations.x]\ncommand = [\"true\"]\ntimout = \"1s\"\n".into(),
            "t.toml:3:1: operations.x.timout: unknown key 'timout' (did you mean 'timeout'?)",
        ),
        (
            format!("{op}params.p = {{ type = \"string\", max_lne = 3 }}\n"),
            "t.toml:3:31: operations.x.params.p.max_lne: unknown key 'max_lne' (did you mean 'max_len'?)",
        ),
        (
            format!("{op}params.p = {{ type = \"enum\", value = [\"a\"] }}\n"),
            "t.toml:3:29: operations.x.params.p.value: unknown key 'value' (did you mean 'values'?)",
        ),
        (
            format!("{op}params.p = {{ type = \"integer\", mix = 3 }}\n"),
            "t.toml:3:32: operations.x.params.p.mix: unknown key 'mix' (did you mean 'min'?)",
        ),
        (
            format!("{op}params.p = {{ type = \"ipv4\", publc = true }}\n"),
            "t.toml:3:29: operations.x.params.p.publc: unknown key 'publc' (did you mean 'public'?)",
        ),
        (
            format!("{op}params.p = {{ type = \"path\", acess = \"read\" }}\n"),
            "t.toml:3:29: operations.x.params.p.acess: unknown key 'acess' (did you mean 'access'?)",
        ),
        (
            format!("{op}params.p = {{ type = \"bool\", optinal = true }}\n"),
            "t.toml:3:29: operations.x.params.p.optinal: unknown key 'optinal' (did you mean 'optional'?)",
        ),
        (
            format!("{op}params.p = {{ tpye = \"bool\" }}\n"),
            "t.toml:3:14: operations.x.params.p.tpye: unknown key 'tpye' (did you mean 'type'?)",
        ),
        (
            "[operations.x]\ncommand = [\"true\"]\nallow = { users = [\"a\"], group = [\"b\"] }\n"
                .into(),
            "t.toml:3:26: operations.x.allow.group: unknown key 'group' (did you mean 'groups'?)",
        ),
        (
            "[operations.x]\ncommand = [\"true\"]\nauth = [\"approval\"]\napprove = { user = [\"a\"] }\n"
                .into(),
            "t.toml:4:13: operations.x.approve.user: unknown key 'user' (did you mean 'users'?)",
        ),
        (
            "[operations.x]\ncommand = [\"true\"]\nrun_as = { usr = \"nobody\" }\n".into(),
            "t.toml:3:12: operations.x.run_as.usr: unknown key 'usr' (did you mean 'user'?)",
        ),
        (
            "[operations.x]\ncommand = [\"true\"]\nsandbox = { read = [\"/usr\"], writ = [] }\n"
                .into(),
            "t.toml:3:30: operations.x.sandbox.writ: unknown key 'writ' (did you mean 'write'?)",
        ),
        (
            "[operations.x]\ncommand = [\"true\"]\n[operations.x.limits]\nmemroy = \"1G\"\n".into(),
            "t.toml:4:1: operations.x.limits.memroy: unknown key 'memroy' (did you mean 'memory'?)",
        ),
    ];
    for (text, want) in cases {
        assert_has(text, want);
    }
}

/// A key far from every known key lists them all, as the table's struct declares
/// them.
#[test]
fn unknown_key_far_from_all_lists_the_keys() {
    assert_has(
        "[operations.x]\ncommand = [\"true\"]\nrun_as = { zzzzzz = 1 }\n",
        "t.toml:3:12: operations.x.run_as.zzzzzz: unknown key 'zzzzzz' (expected one of: user, group)",
    );
    assert_has(
        "[operations.x]\ncommand = [\"true\"]\nlimits = { zzzzzz = 1 }\n",
        "t.toml:3:12: operations.x.limits.zzzzzz: unknown key 'zzzzzz' \
         (expected one of: cpu, memory, open_files, processes)",
    );
}

#[test]
fn wrong_types_are_reported_with_what_was_found() {
    let cases = [
        (
            "[service]\nsocket = 3\n",
            "t.toml:2:10: service.socket: expected a string, found an integer",
        ),
        (
            "[service]\nallow_self_approval = \"yes\"\n",
            "t.toml:2:23: service.allow_self_approval: expected true or false, found a string",
        ),
        (
            "[service]\nmax_runs = 1.5\n",
            "t.toml:2:12: service.max_runs: expected an integer, found a float",
        ),
        (
            "[service]\nmax_runs = 99999999999999999999\n",
            "t.toml:2:12: service.max_runs: integer is out of range",
        ),
        (
            "[service]\nidle_timeout = 1979-05-27\n",
            "t.toml:2:16: service.idle_timeout: expected a duration string such as \"10s\", found a datetime",
        ),
        (
            "service = []\n",
            "t.toml:1:11: service: expected a table, found an array",
        ),
        (
            "[service]\nsmtp = 1979-05-27\n",
            "t.toml:2:8: service.smtp: expected a table, found a datetime",
        ),
        (
            "operations = 3\n",
            "t.toml:1:14: operations: expected a table, found an integer",
        ),
        (
            "[operations.x]\ncommand = [\"true\"]\nparams.p = [\"string\"]\n",
            "t.toml:3:12: operations.x.params.p: expected a table, found an array",
        ),
        (
            "[operations.x]\ncommand = [\"true\"]\nauth = \"totp\"\n",
            "t.toml:3:8: operations.x.auth: expected an array, found a string",
        ),
        (
            "[operations.x]\ncommand = [\"true\"]\nallow = { users = [[\"a\"]] }\n",
            "t.toml:3:20: operations.x.allow.users[0]: expected a name or a numeric id, found an array",
        ),
    ];
    for (text, want) in cases {
        assert_has(text, want);
    }
    // Every wrong element of a list is reported, each at its own index.
    let e = errors("[operations.x]\ncommand = [\"echo\", 1, \"a\", true]\n");
    assert_eq!(
        e,
        [
            "t.toml:2:20: operations.x.command[1]: expected a string, found an integer",
            "t.toml:2:28: operations.x.command[3]: expected a string, found a boolean",
        ]
    );
    // A parameter of the wrong type is still declared: its placeholder is not
    // reported as well.
    let e = errors("[operations.x]\ncommand = [\"echo\", \"{p}\"]\nparams.p = 3\n");
    assert_eq!(
        e,
        ["t.toml:3:12: operations.x.params.p: expected a table, found an integer"]
    );
    // A required key of the wrong type is not also missing.
    let e = errors("[service.smtp]\nhost = 3\nfrom = \"a@b.org\"\n");
    assert_eq!(
        e,
        ["t.toml:2:8: service.smtp.host: expected a string, found an integer"]
    );
}

#[test]
fn duplicate_keys_are_syntax_errors_at_the_second() {
    let e = errors(
        "[operations.x]\ncommand = [\"a\"]\ncommand = [\"b\"]\n[service]\n[service]\n\
         [operations.y]\ncommand = [\"true\"]\nallow = { users = [\"a\"], users = [\"b\"] }\n",
    );
    assert_eq!(
        e,
        [
            "t.toml:3:1: TOML syntax: duplicate key",
            "t.toml:5:2: TOML syntax: duplicate key",
            "t.toml:8:26: TOML syntax: duplicate key",
        ]
    );
}

/// What the file contains is quoted in diagnostics: control and format
/// characters in it are shown escaped, never passed to the terminal.
#[test]
fn diagnostics_escape_what_the_file_contains() {
    let text = "[operations.x]\ncommand = [\"true\"]\n\"a\\u001b[2Jb\" = 1\n\"c\u{202e}d\" = 2\n\
                output = \"x\\ry\"\n";
    let shown = match parse(text, "t.toml") {
        Ok(_) => panic!("accepted"),
        Err(d) => d.to_string(),
    };
    for c in shown.chars() {
        assert!(
            c == '\n' || !(c.is_control() || regent_proto::text::is_hidden_format(c)),
            "{c:?} reaches the terminal in {shown:?}"
        );
    }
    assert!(shown.contains("unknown key 'a\\u{001b}[2Jb'"), "{shown}");
    assert!(shown.contains("unknown key 'c\\u{202e}d'"), "{shown}");
    assert!(shown.contains("unknown value 'x\\u{000d}y'"), "{shown}");
}
