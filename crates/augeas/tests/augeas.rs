//! Real files in a temporary Augeas root: sshd_config, /etc/hosts and an
//! ini-style file (Puppet's), through the real libaugeas and its lenses.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use regent_augeas::{
    content_hash, run, run_decl, run_with, unified, AugFile, Error, Lens, RunOptions,
};
use regent_model::{AugAction, AugeasDecl, InsertPosition};

const SSHD: &str = "\
# a comment
Port 22
ListenAddress 0.0.0.0
ListenAddress ::
PermitRootLogin prohibit-password
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
Match User anoncvs
    X11Forwarding no
Match Group guests
    X11Forwarding no
";

const HOSTS: &str = "\
127.0.0.1 localhost
127.0.1.1 box.example.org box
";

const PUPPET: &str = "\
[main]
server = old.example.org
logdir = /var/log/puppet

[agent]
report = true
";

struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Root {
        let dir = tempfile::tempdir().unwrap();
        for (file, text) in [
            ("etc/ssh/sshd_config", SSHD),
            ("etc/hosts", HOSTS),
            ("etc/puppet/puppet.conf", PUPPET),
        ] {
            let path = dir.path().join(file);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        Root { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn disk(&self, file: &str) -> PathBuf {
        self.path().join(&file[1..])
    }

    fn read(&self, file: &str) -> String {
        fs::read_to_string(self.disk(file)).unwrap()
    }

    fn opts(&self) -> RunOptions {
        RunOptions {
            root: Some(self.path().to_path_buf()),
            ..RunOptions::default()
        }
    }

    fn sshd(&self) -> AugFile {
        AugFile::open("Sshd", "/etc/ssh/sshd_config", Some(self.path())).unwrap()
    }
}

fn set(path: &str, value: &str) -> AugAction {
    AugAction::Set {
        path: path.into(),
        value: value.into(),
    }
}

fn get(path: &str) -> AugAction {
    AugAction::Get { path: path.into() }
}

#[test]
fn sshd_each_action() {
    let root = Root::new();
    let mut f = root.sshd();
    assert_eq!(f.lens(), "Sshd.lns");
    // get and match
    assert_eq!(f.get("Port").unwrap().as_deref(), Some("22"));
    assert_eq!(f.get("Banner").unwrap(), None);
    assert_eq!(
        f.get("Match[1]/Settings/X11Forwarding").unwrap().as_deref(),
        Some("no")
    );
    let nodes = f.matches("ListenAddress").unwrap();
    let got: Vec<(&str, Option<&str>)> = nodes
        .iter()
        .map(|n| (n.path.as_str(), n.value.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("ListenAddress[1]", Some("0.0.0.0")),
            ("ListenAddress[2]", Some("::"))
        ]
    );
    assert!(matches!(f.get("ListenAddress"), Err(Error::Action { .. })));
    // set, setm, insert, move, remove
    f.set("Port", "2222").unwrap();
    f.insert("Match[1]", "PasswordAuthentication", InsertPosition::Before)
        .unwrap();
    f.set("PasswordAuthentication", "no").unwrap();
    assert_eq!(f.setm("Match", "Settings/X11Forwarding", "yes").unwrap(), 2);
    assert_eq!(f.setm("AcceptEnv", "*[last()]", "LC_ALL").unwrap(), 1);
    f.insert("Port", "Protocol", InsertPosition::Before)
        .unwrap();
    f.set("Protocol", "2").unwrap();
    f.insert("ListenAddress[2]", "ListenAddress", InsertPosition::After)
        .unwrap();
    f.set("ListenAddress[3]", "192.0.2.1").unwrap();
    f.mv("Subsystem/sftp", "Subsystem/internal").unwrap();
    assert_eq!(f.remove("ListenAddress[1]").unwrap(), 1);
    assert_eq!(f.remove("#comment").unwrap(), 1);
    assert_eq!(f.remove("Nothing").unwrap(), 0);
    // Nothing is written before save.
    assert_eq!(root.read("/etc/ssh/sshd_config"), SSHD);
    let saved = f.save().unwrap();
    assert!(saved.changed);
    assert_eq!(saved.files, ["/etc/ssh/sshd_config"]);
    assert_eq!(
        root.read("/etc/ssh/sshd_config"),
        "\
Protocol 2
Port 2222
ListenAddress ::
ListenAddress 192.0.2.1
PermitRootLogin prohibit-password
AcceptEnv LANG LC_ALL
Subsystem internal /usr/lib/openssh/sftp-server
PasswordAuthentication no
Match User anoncvs
    X11Forwarding yes
Match Group guests
    X11Forwarding yes
"
    );
    // Saving again changes nothing.
    let again = f.save().unwrap();
    assert!(!again.changed);
    assert!(again.files.is_empty());
}

#[test]
fn move_renames_a_node() {
    let root = Root::new();
    let mut f = root.sshd();
    f.mv("PermitRootLogin", "Port").unwrap();
    assert!(f.save().unwrap().changed);
    let text = root.read("/etc/ssh/sshd_config");
    // The node is now Port, in the old Port's place; the old Port went.
    assert!(
        text.starts_with("# a comment\nPort prohibit-password\nListenAddress"),
        "{text}"
    );
    assert!(
        !text.contains("PermitRootLogin") && !text.contains("Port 22"),
        "{text}"
    );
}

#[test]
fn hosts_by_quoted_placeholder() {
    let root = Root::new();
    let decl = AugeasDecl {
        lens: "Hosts".into(),
        file: "/etc/hosts".into(),
        actions: vec![
            set("*[canonical = '{host}']/ipaddr", "{ip}"),
            set("01/ipaddr", "192.0.2.7"),
            set("01/canonical", "new.example.org"),
            AugAction::Match {
                path: "*[canonical = '{host}']/ipaddr".into(),
            },
        ],
    };
    let lookup = |n: &str| match n {
        "host" => Some("box.example.org".to_string()),
        "ip" => Some("127.0.1.2".to_string()),
        _ => None,
    };
    let answer = run_decl(&decl, lookup, &root.opts()).unwrap();
    assert!(answer.changed);
    assert_eq!(answer.saved, ["/etc/hosts"]);
    assert_eq!(
        serde_json::to_value(&answer.results).unwrap(),
        serde_json::json!([{"match": "*[canonical = 'box.example.org']/ipaddr",
            "nodes": [{"path": "2/ipaddr", "value": "127.0.1.2"}]}])
    );
    assert_eq!(
        root.read("/etc/hosts"),
        "127.0.0.1 localhost\n127.0.1.2 box.example.org box\n192.0.2.7\tnew.example.org\n"
    );
    // A value that would close the quote is refused before Augeas runs.
    let evil = |n: &str| match n {
        "host" => Some("x' or '1' = '1".to_string()),
        _ => Some("10.0.0.1".to_string()),
    };
    let e = run_decl(&decl, evil, &root.opts()).unwrap_err();
    assert!(matches!(e, Error::Value { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("action 1 (set) refused: path: the value of {host}"),
        "{e}"
    );
}

#[test]
fn ini_style_file() {
    let root = Root::new();
    let file = "/etc/puppet/puppet.conf";
    let answer = run(
        "Puppet",
        file,
        &[
            get("main/server"),
            set("main/server", "puppet.example.org"),
            AugAction::Remove {
                path: "main/logdir".into(),
            },
            set("agent/runinterval", "3600"),
            get("main/server"),
        ],
        &root.opts(),
    )
    .unwrap();
    assert_eq!(
        serde_json::to_value(&answer).unwrap(),
        serde_json::json!({
            "file": file, "changed": true, "saved": [file],
            "results": [
                {"get": "main/server", "value": "old.example.org"},
                {"get": "main/server", "value": "puppet.example.org"},
            ]
        })
    );
    assert_eq!(
        root.read(file),
        "[main]\nserver = puppet.example.org\n\n[agent]\nreport = true\nruninterval=3600\n"
    );
    // Only reads: nothing saved, nothing changed.
    let answer = run("Puppet", file, &[get("agent/report")], &root.opts()).unwrap();
    assert!(!answer.changed);
    assert!(answer.saved.is_empty());
    assert_eq!(answer.results[0]["value"], "true");
}

#[test]
fn paths_outside_the_file_are_refused() {
    let root = Root::new();
    let mut f = root.sshd();
    for p in [
        "../../hosts",
        "/files/etc/hosts/1/ipaddr",
        "/augeas/save",
        "*/..",
        "parent::*",
        "ancestor::*/x",
        "$v",
        "Port[/files/etc/hosts = 'x']",
        "a//b",
    ] {
        assert!(matches!(f.get(p), Err(Error::Path { .. })), "get {p}");
        assert!(matches!(f.set(p, "1"), Err(Error::Path { .. })), "set {p}");
        assert!(matches!(f.remove(p), Err(Error::Path { .. })), "remove {p}");
        assert!(
            matches!(f.mv("Port", p), Err(Error::Path { .. })),
            "move to {p}"
        );
    }
    assert!(matches!(
        f.setm("Match", "../x", "1"),
        Err(Error::Path { .. })
    ));
    assert!(matches!(
        f.insert("Port", "a/b", InsertPosition::After),
        Err(Error::Value { .. })
    ));
    // A placeholder's value is checked for its slot.
    let decl = AugeasDecl {
        lens: "Sshd".into(),
        file: "/etc/ssh/sshd_config".into(),
        actions: vec![set("{key}", "yes")],
    };
    for evil in ["..", "../../etc/hosts", "*", "Port/../../x", "a[1]", "x y"] {
        let e = run_decl(&decl, |_| Some(evil.to_string()), &root.opts()).unwrap_err();
        assert!(matches!(e, Error::Value { .. }), "{evil}: {e}");
    }
    assert_eq!(root.read("/etc/ssh/sshd_config"), SSHD);
    // A file or lens that is not a plain declaration.
    for (lens, file) in [
        ("Sshd", "/etc/ssh/*"),
        ("Sshd", "/etc/ssh/../hosts"),
        ("Sshd", "etc/hosts"),
        ("@Sshd", "/etc/ssh/sshd_config"),
    ] {
        let e = AugFile::open(lens, file, Some(root.path())).unwrap_err();
        assert!(matches!(e, Error::Declaration { .. }), "{lens} {file}: {e}");
    }
}

#[test]
fn load_errors_are_reported() {
    let root = Root::new();
    let e = AugFile::open("Nosuchlens", "/etc/hosts", Some(root.path())).unwrap_err();
    assert!(matches!(e, Error::Load { .. }), "{e}");
    // A file the lens cannot parse.
    fs::write(root.disk("/etc/hosts"), "127.0.0.1\n").unwrap();
    let e = AugFile::open("Hosts", "/etc/hosts", Some(root.path())).unwrap_err();
    assert!(matches!(e, Error::Load { .. }), "{e}");
    assert!(e.to_string().contains("/etc/hosts: parse_failed"), "{e}");
    assert!(e.to_string().contains("(line 1)"), "{e}");
    // A missing file loads as empty and a save creates it.
    let mut f = AugFile::open("Hosts", "/etc/hosts.new", Some(root.path())).unwrap();
    assert_eq!(f.matches("*").unwrap(), []);
    f.set("1/ipaddr", "192.0.2.1").unwrap();
    f.set("1/canonical", "a.example.org").unwrap();
    assert!(f.save().unwrap().changed);
    assert_eq!(root.read("/etc/hosts.new"), "192.0.2.1\ta.example.org\n");
}

/// Makes `dir` read-only for this process: `chattr +i` as root (root ignores
/// mode bits; the tests run as root in CI), mode 0555 otherwise. Returns a
/// guard that undoes it.
struct ReadOnly(PathBuf, bool);

impl ReadOnly {
    fn new(dir: &Path) -> ReadOnly {
        let root = rustix_is_root();
        if root {
            let st = Command::new("chattr").arg("+i").arg(dir).status().unwrap();
            assert!(
                st.success(),
                "chattr +i {} (needs ext4 or similar)",
                dir.display()
            );
        } else {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o555)).unwrap();
        }
        ReadOnly(dir.to_path_buf(), root)
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        if self.1 {
            let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
        } else {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o755));
        }
    }
}

fn rustix_is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

#[test]
fn a_failed_save_is_a_failure() {
    let root = Root::new();
    let dir = root.disk("/etc/ssh");
    let guard = ReadOnly::new(&dir);
    let e = run(
        "Sshd",
        "/etc/ssh/sshd_config",
        &[set("Port", "2222")],
        &root.opts(),
    )
    .unwrap_err();
    drop(guard);
    assert!(matches!(e, Error::Save { .. }), "{e}");
    assert!(e.to_string().contains("/etc/ssh/sshd_config"), "{e}");
    assert_eq!(root.read("/etc/ssh/sshd_config"), SSHD);
    // A tree the lens cannot write is a failed save too: sshd_config's lens
    // puts no key after the Match blocks.
    let mut f = root.sshd();
    f.set("Banner", "s3cret-cipher").unwrap();
    let e = f.save().unwrap_err();
    assert!(matches!(e, Error::Save { .. }), "{e}");
    assert!(e.to_string().contains("put_failed"), "{e}");
    // Augeas's message goes on with the tree's values: they are left out.
    assert!(!e.to_string().contains("s3cret"), "{e}");
    assert!(!e.to_string().contains("prohibit-password"), "{e}");
    assert_eq!(root.read("/etc/ssh/sshd_config"), SSHD);
}

#[test]
fn all_or_nothing() {
    let root = Root::new();
    let file = "/etc/ssh/sshd_config";
    // The third action fails (insert needs exactly one node): nothing is written.
    let actions = [
        set("Port", "2222"),
        AugAction::Remove {
            path: "PermitRootLogin".into(),
        },
        AugAction::Insert {
            label: "Banner".into(),
            path: "ListenAddress".into(),
            position: InsertPosition::After,
        },
    ];
    let e = run("Sshd", file, &actions, &root.opts()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Action {
                action: "insert",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(root.read(file), SSHD);
    // A refused value in a later action: nothing written either.
    let decl = AugeasDecl {
        lens: "Sshd".into(),
        file: file.into(),
        actions: vec![set("Port", "{port}"), set("Banner", "{banner}")],
    };
    let lookup = |n: &str| match n {
        "port" => Some("2222".to_string()),
        _ => Some("x\nPermitRootLogin yes".to_string()),
    };
    let e = run_decl(&decl, lookup, &root.opts()).unwrap_err();
    assert!(
        e.to_string()
            .contains("action 2 (set) refused: value: the value of {banner}"),
        "{e}"
    );
    assert_eq!(root.read(file), SSHD);
    // An absent optional value leaves its action out; the rest applies.
    let lookup = |n: &str| (n == "port").then(|| "2222".to_string());
    let answer = run_decl(&decl, lookup, &root.opts()).unwrap();
    assert!(answer.changed);
    assert_eq!(root.read(file), SSHD.replace("Port 22\n", "Port 2222\n"));
}

#[test]
fn dry_run_diff_equals_the_real_change() {
    let root = Root::new();
    let file = "/etc/ssh/sshd_config";
    let actions = [
        set("Port", "2222"),
        set("PermitRootLogin", "no"),
        AugAction::Insert {
            label: "Banner".into(),
            path: "Match[1]".into(),
            position: InsertPosition::Before,
        },
        set("Banner", "s3cret-cipher"),
        AugAction::Remove {
            path: "ListenAddress[2]".into(),
        },
    ];
    let mut opts = root.opts();
    opts.dry_run = true;
    let dry = run("Sshd", file, &actions, &opts).unwrap();
    assert!(dry.dry_run && dry.changed);
    assert!(dry.saved.is_empty());
    assert_eq!(
        dry.hash.as_deref(),
        Some(content_hash(SSHD.as_bytes()).as_str())
    );
    assert_eq!(root.read(file), SSHD, "a dry run writes nothing");
    let diff = dry.diff.unwrap();
    assert!(diff.contains("-Port 22\n+Port 2222\n"), "{diff}");

    let real = run("Sshd", file, &actions, &root.opts()).unwrap();
    assert!(real.changed && !real.dry_run && real.diff.is_none());
    let after = root.read(file);
    assert_eq!(diff, unified(file, SSHD, &after, &[]));

    // Secrets are redacted from the diff.
    let root = Root::new();
    opts.root = Some(root.path().to_path_buf());
    opts.secrets = vec!["s3cret-cipher".into()];
    let dry = run("Sshd", file, &actions, &opts).unwrap();
    let diff = dry.diff.unwrap();
    assert!(diff.contains("+Banner <redacted>\n"), "{diff}");
    assert!(!diff.contains("s3cret"), "{diff}");
    // Nothing to change: an empty diff.
    let dry = run("Sshd", file, &[set("Port", "22")], &opts).unwrap();
    assert!(!dry.changed);
    assert_eq!(dry.diff.as_deref(), Some(""));
}

#[test]
fn expected_hash_guards_the_change() {
    let root = Root::new();
    let file = "/etc/ssh/sshd_config";
    let actions = [set("Port", "2222")];
    let mut opts = root.opts();
    opts.dry_run = true;
    let hash = run("Sshd", file, &actions, &opts).unwrap().hash.unwrap();
    // The file changes after the diff was shown: the change is refused.
    fs::write(root.disk(file), SSHD.replace("no\n", "yes\n")).unwrap();
    let changed = fs::read_to_string(root.disk(file)).unwrap();
    let opts = RunOptions {
        expect_hash: Some(hash.clone()),
        ..root.opts()
    };
    let e = run("Sshd", file, &actions, &opts).unwrap_err();
    assert!(matches!(e, Error::Changed { .. }), "{e}");
    assert_eq!(e.kind(), "changed");
    assert_eq!(root.read(file), changed);
    // As it was: the change applies.
    fs::write(root.disk(file), SSHD).unwrap();
    assert!(run("Sshd", file, &actions, &opts).unwrap().changed);
}

#[test]
fn preview_then_save_writes() {
    let root = Root::new();
    let mut f = root.sshd();
    f.set("Port", "2200").unwrap();
    let p = f.preview(&[]).unwrap();
    assert!(p.changed);
    assert_eq!(root.read("/etc/ssh/sshd_config"), SSHD);
    assert!(f.save().unwrap().changed);
    assert!(root.read("/etc/ssh/sshd_config").contains("Port 2200\n"));
}

#[test]
fn a_lens_compiled_once_opens_files_as_a_fresh_load_does() {
    let root = Root::new();
    let mut lens = Lens::new("Sshd", Some(root.path())).unwrap();
    assert_eq!(lens.name(), "Sshd.lns");
    lens.compile().unwrap();
    let answer = run_with(
        lens,
        "/etc/ssh/sshd_config",
        &[get("Port"), set("Port", "2200")],
        &root.opts(),
    )
    .unwrap();
    let fresh = AugFile::open("Sshd", "/etc/ssh/sshd_config", Some(root.path())).unwrap();
    assert_eq!(fresh.get("Port").unwrap().as_deref(), Some("2200"));
    assert_eq!(answer.results[0]["value"], "22");
    assert!(answer.changed);

    // A lens that does not exist fails when compiled, naming it; a lens that
    // rejects the empty text it is compiled with still compiles.
    let mut missing = Lens::new("NoSuchLens", Some(root.path())).unwrap();
    let e = missing.compile().unwrap_err();
    assert_eq!(e.kind(), "load");
    assert!(e.to_string().contains("NoSuchLens.lns"), "{e}");
    let mut hosts = Lens::new("Hosts", Some(root.path())).unwrap();
    hosts.compile().unwrap();
    let f = hosts.open("/etc/hosts").unwrap();
    assert!(!f.matches("*/ipaddr").unwrap().is_empty());
    // A name that is not a lens name is refused before Augeas starts.
    assert_eq!(Lens::new("../x", None).unwrap_err().kind(), "declaration");
}

#[test]
fn a_file_changed_on_disk_after_its_load_is_not_overwritten() {
    let root = Root::new();
    let mut f = root.sshd();
    f.set("Port", "2200").unwrap();
    // Edited by hand meanwhile (same size, even).
    let edited = SSHD.replacen("Port 22", "Port 23", 1);
    fs::write(root.disk("/etc/ssh/sshd_config"), &edited).unwrap();
    let e = f.save().unwrap_err();
    assert_eq!(e.kind(), "changed", "{e}");
    assert_eq!(root.read("/etc/ssh/sshd_config"), edited);
}
