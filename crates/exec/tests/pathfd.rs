//! Files passed to real commands as descriptors (`CommandSpec::paths`): opened in
//! the command's own process, after its confinement, beneath their directory with
//! no symlink on the way. Must run as root (changes uid).

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::PathBuf;
use std::time::Duration;

use regent_exec::{
    run, CommandSpec, ExecError, ExecPolicy, FileAccess, LandlockRules, PathArg, PathRefusal, RunAs,
};

const NOBODY: RunAs = RunAs {
    uid: 65534,
    gid: 65534,
};

fn policy() -> ExecPolicy {
    ExecPolicy {
        timeout: Duration::from_secs(20),
        ..ExecPolicy::default()
    }
}

/// `root/under/{public (0644), private (0600), evil -> root/outside}`,
/// `root/outside/secret`.
fn tree(tag: &str) -> PathBuf {
    let root =
        std::env::temp_dir().join(format!("regent-exec-pathfd-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("under")).unwrap();
    std::fs::create_dir_all(root.join("outside")).unwrap();
    for d in [&root, &root.join("under")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(root.join("under/public"), "public text").unwrap();
    std::fs::set_permissions(
        root.join("under/public"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::write(root.join("under/private"), "private text").unwrap();
    std::fs::set_permissions(
        root.join("under/private"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::write(root.join("outside/secret"), "SECRET").unwrap();
    symlink(root.join("outside"), root.join("under/evil")).unwrap();
    root
}

fn cat(root: &std::path::Path, rel: &str, access: FileAccess) -> CommandSpec {
    let mut spec = CommandSpec::new(["cat".to_string(), PathArg::placeholder(0)]);
    spec.paths.push(PathArg {
        field: "file".into(),
        beneath: root.join("under"),
        path: rel.into(),
        access,
    });
    spec
}

#[tokio::test]
async fn a_command_reads_through_its_descriptor() {
    let root = tree("read");
    let out = run(&cat(&root, "public", FileAccess::Read), &policy())
        .await
        .unwrap();
    assert!(out.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"public text");
    // The argv element names the descriptor, not the file.
    let spec = CommandSpec {
        argv: vec!["readlink".into(), PathArg::placeholder(0)],
        ..cat(&root, "public", FileAccess::Read)
    };
    let out = run(&spec, &policy()).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        root.join("under/public").to_str().unwrap()
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn a_symlink_out_is_refused_before_the_command_runs() {
    let root = tree("escape");
    match run(&cat(&root, "evil/secret", FileAccess::Read), &policy()).await {
        Err(ExecError::Path { field, refusal }) => {
            assert_eq!(field, "file");
            assert_eq!(refusal, PathRefusal::Errno(libc::ELOOP));
        }
        other => panic!("expected a path refusal, got {other:?}"),
    }
    match run(&cat(&root, "missing", FileAccess::Read), &policy()).await {
        Err(ExecError::Path { refusal, .. }) => {
            assert_eq!(refusal, PathRefusal::Errno(libc::ENOENT))
        }
        other => panic!("expected a path refusal, got {other:?}"),
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn the_file_is_opened_with_the_commands_own_access() {
    let root = tree("access");
    let nobody = ExecPolicy {
        run_as: Some(NOBODY),
        ..policy()
    };
    // Root's file, mode 0600: root reads it, nobody does not get it.
    let out = run(&cat(&root, "private", FileAccess::Read), &policy())
        .await
        .unwrap();
    assert_eq!(out.stdout, b"private text");
    match run(&cat(&root, "private", FileAccess::Read), &nobody).await {
        Err(ExecError::Path { refusal, .. }) => {
            assert_eq!(refusal, PathRefusal::Errno(libc::EACCES))
        }
        other => panic!("expected EACCES, got {other:?}"),
    }
    let out = run(&cat(&root, "public", FileAccess::Read), &nobody)
        .await
        .unwrap();
    assert_eq!(out.stdout, b"public text");
    // A Landlock sandbox that does not cover the directory refuses the open.
    if regent_exec::landlock::abi_version().is_some() {
        let sandboxed = ExecPolicy {
            landlock: Some(LandlockRules {
                read: vec!["/usr".into(), "/lib".into(), "/lib64".into(), "/etc".into()],
                write: vec![],
            }),
            ..policy()
        };
        match run(&cat(&root, "public", FileAccess::Read), &sandboxed).await {
            Err(ExecError::Path { refusal, .. }) => {
                assert_eq!(refusal, PathRefusal::Errno(libc::EACCES))
            }
            other => panic!("expected EACCES under Landlock, got {other:?}"),
        }
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn write_and_create_through_descriptors() {
    let root = tree("write");
    let mut spec = CommandSpec::new([
        "/bin/sh".to_string(),
        "-c".into(),
        "printf new > \"$1\"".into(),
        "sh".into(),
        PathArg::placeholder(0),
    ]);
    spec.paths.push(PathArg {
        field: "out".into(),
        beneath: root.join("under"),
        path: "created".into(),
        access: FileAccess::Create,
    });
    let out = run(&spec, &policy()).await.unwrap();
    assert!(out.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(root.join("under/created")).unwrap(),
        "new"
    );
    spec.paths[0].path = "public".into();
    spec.paths[0].access = FileAccess::Write;
    let out = run(&spec, &policy()).await.unwrap();
    assert!(out.success());
    assert_eq!(
        std::fs::read_to_string(root.join("under/public")).unwrap(),
        "new"
    );
    // Creating through a symlinked directory is refused; nothing appears outside.
    spec.paths[0].path = "evil/planted".into();
    spec.paths[0].access = FileAccess::Create;
    assert!(matches!(
        run(&spec, &policy()).await,
        Err(ExecError::Path { .. })
    ));
    assert!(!root.join("outside/planted").exists());
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn command_path_is_searched_and_exported() {
    let dir = std::env::temp_dir().join(format!("regent-exec-cmdpath-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prog = dir.join("regent-only-here");
    std::fs::write(&prog, "#!/bin/sh\necho \"found $PATH\"\n").unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    let p = ExecPolicy {
        command_path: format!("{}:/usr/bin:/bin", dir.display()),
        ..policy()
    };
    let out = run(&CommandSpec::new(["regent-only-here"]), &p)
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("found {}:/usr/bin:/bin", dir.display())
    );
    assert!(matches!(
        run(&CommandSpec::new(["regent-only-here"]), &policy()).await,
        Err(ExecError::NotFound { .. })
    ));
    let _ = std::fs::remove_dir_all(&dir);
}
