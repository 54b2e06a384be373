//! Files passed to real commands as descriptors (`CommandSpec::paths`): opened in
//! the command's own process, after its confinement, beneath their directory with
//! no symlink on the way. Must run as root (changes uid).

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::PathBuf;
use std::time::Duration;

use regent_exec::{
    run, CommandSpec, ExecError, ExecPolicy, FileAccess, PathArg, PathRefusal, RunAs, Sandbox,
};

/// nobody's uid and gid.
const NOBODY_ID: u32 = 65534;
const NOBODY: RunAs = RunAs::ids(NOBODY_ID, NOBODY_ID);

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
            sandbox: Some(Sandbox {
                read: vec!["/usr".into(), "/lib".into(), "/lib64".into(), "/etc".into()],
                write: vec![],
                ..Sandbox::default()
            }),
            ..policy()
        };
        match run(&cat(&root, "public", FileAccess::Read), &sandboxed).await {
            Err(ExecError::Path { refusal, .. }) => {
                assert_eq!(refusal, PathRefusal::Errno(libc::EACCES))
            }
            other => panic!("expected EACCES under Landlock, got {other:?}"),
        }
        // One that covers it lets the file through (the real open goes through
        // /proc/self/fd, which the sandbox does not list).
        let covering = ExecPolicy {
            sandbox: Some(Sandbox {
                read: vec![
                    "/usr".into(),
                    "/lib".into(),
                    "/lib64".into(),
                    "/etc".into(),
                    root.join("under"),
                ],
                write: vec![],
                ..Sandbox::default()
            }),
            ..policy()
        };
        let out = run(&cat(&root, "public", FileAccess::Read), &covering)
            .await
            .unwrap();
        assert_eq!(out.stdout, b"public text");
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

/// Whether anything opened the watched file since the last call (the watch was
/// added with `IN_OPEN`; the event is queued before `open` returns).
fn opened_since(inotify: &std::os::fd::OwnedFd) -> bool {
    let mut buf = [0u8; 4096];
    match rustix::io::read(inotify, &mut buf) {
        Ok(n) => n > 0,
        Err(rustix::io::Errno::AGAIN) => false,
        Err(e) => panic!("reading inotify: {e}"),
    }
}

fn watch_opens(file: &std::path::Path) -> std::os::fd::OwnedFd {
    use rustix::fs::inotify;
    let fd = inotify::init(inotify::CreateFlags::NONBLOCK | inotify::CreateFlags::CLOEXEC).unwrap();
    inotify::add_watch(&fd, file, inotify::WatchFlags::OPEN).unwrap();
    fd
}

/// A device node or FIFO below `under` is refused without ever being opened: an
/// open alone can act (a watchdog starts its countdown, a tape rewinds, a FIFO's
/// blocked writer is released), whatever the type check says afterwards.
#[tokio::test]
async fn a_device_or_fifo_is_refused_without_being_opened() {
    use rustix::fs::{mknodat, FileType, Mode, CWD};
    let root = tree("device");
    let dev = root.join("under/dev");
    // The same device as /dev/null (1, 3): harmless to open, but an open shows.
    mknodat(
        CWD,
        &dev,
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    let fifo = root.join("under/fifo");
    mknodat(CWD, &fifo, FileType::Fifo, Mode::from_raw_mode(0o666), 0).unwrap();
    for (node, access) in [
        (&dev, FileAccess::Read),
        (&dev, FileAccess::Write),
        (&dev, FileAccess::Create),
        (&fifo, FileAccess::Read),
        (&fifo, FileAccess::Create),
    ] {
        let inotify = watch_opens(node);
        let rel = node.file_name().unwrap().to_str().unwrap();
        match run(&cat(&root, rel, access), &policy()).await {
            Err(ExecError::Path { refusal, .. }) => {
                assert_eq!(refusal, PathRefusal::FileType, "{rel} {access}")
            }
            other => panic!("{rel} {access}: expected a refusal, got {other:?}"),
        }
        assert!(
            !opened_since(&inotify),
            "{rel} was opened for {access} before being refused"
        );
    }
    // A regular file is opened (the watch works).
    let inotify = watch_opens(&root.join("under/public"));
    let out = run(&cat(&root, "public", FileAccess::Read), &policy())
        .await
        .unwrap();
    assert_eq!(out.stdout, b"public text");
    assert!(opened_since(&inotify));
    let _ = std::fs::remove_dir_all(&root);
}

/// `create` never writes into a file that someone else made: a caller who can
/// write below `under` pre-creates the name (their own file, mode 0666, or one they
/// keep open) and would read whatever the command writes. An existing file is
/// accepted only if it belongs to the command's own user.
#[tokio::test]
async fn create_refuses_an_existing_file_of_another_user() {
    let root = tree("precreated");
    let planted = root.join("under/planted");
    std::fs::write(&planted, "planted").unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::os::unix::fs::chown(&planted, Some(NOBODY_ID), Some(NOBODY_ID)).unwrap();
    let mut spec = CommandSpec::new([
        "/bin/sh".to_string(),
        "-c".into(),
        "printf ROOT-OUTPUT > \"$1\"".into(),
        "sh".into(),
        PathArg::placeholder(0),
    ]);
    spec.paths.push(PathArg {
        field: "out".into(),
        beneath: root.join("under"),
        path: "planted".into(),
        access: FileAccess::Create,
    });
    match run(&spec, &policy()).await {
        Err(ExecError::Path { refusal, .. }) => assert_eq!(refusal, PathRefusal::Owner),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(&planted).unwrap(), "planted");
    // The command's own earlier file (here: root's) is still reused.
    spec.paths[0].path = "mine".into();
    let out = run(&spec, &policy()).await.unwrap();
    assert!(out.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&spec, &policy()).await.unwrap();
    assert!(out.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(root.join("under/mine")).unwrap(),
        "ROOT-OUTPUT"
    );
    // A command running as nobody may reuse a file nobody owns.
    let nobody = ExecPolicy {
        run_as: Some(NOBODY),
        ..policy()
    };
    std::fs::set_permissions(root.join("under"), std::fs::Permissions::from_mode(0o777)).unwrap();
    spec.paths[0].path = "planted".into();
    let out = run(&spec, &nobody).await.unwrap();
    assert!(out.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&planted).unwrap(), "ROOT-OUTPUT");
    let _ = std::fs::remove_dir_all(&root);
}

/// The directory itself must be reachable only through directories that nobody
/// but root and the command's user can rename, and through no symlink.
#[tokio::test]
async fn a_directory_others_could_swap_is_refused() {
    let root = tree("ancestor");
    let ancestor = |r: Result<regent_exec::ExecOutput, ExecError>| match r {
        Err(ExecError::Path { refusal, .. }) => assert_eq!(refusal, PathRefusal::Ancestor),
        other => panic!("expected an ancestor refusal, got {other:?}"),
    };
    let via = |beneath: PathBuf| {
        let mut spec = cat(&root, "public", FileAccess::Read);
        spec.paths[0].beneath = beneath;
        spec
    };
    // Through a symlink to the directory.
    symlink(root.join("under"), root.join("link")).unwrap();
    ancestor(run(&via(root.join("link")), &policy()).await);
    // Below a directory others may write, not sticky.
    let set_mode =
        |mode| std::fs::set_permissions(&root, std::fs::Permissions::from_mode(mode)).unwrap();
    set_mode(0o777);
    ancestor(run(&via(root.join("under")), &policy()).await);
    // Sticky: fine while `under` is root's; not once it belongs to someone else.
    set_mode(0o1777);
    let out = run(&via(root.join("under")), &policy()).await.unwrap();
    assert_eq!(out.stdout, b"public text");
    std::os::unix::fs::chown(root.join("under"), Some(NOBODY_ID), None).unwrap();
    ancestor(run(&via(root.join("under")), &policy()).await);
    // Below a directory of another user, even one only they may write.
    std::os::unix::fs::chown(root.join("under"), Some(0), None).unwrap();
    std::os::unix::fs::chown(&root, Some(NOBODY_ID), None).unwrap();
    set_mode(0o755);
    ancestor(run(&via(root.join("under")), &policy()).await);
    // ... unless that user is the one the command runs as.
    let nobody = ExecPolicy {
        run_as: Some(NOBODY),
        ..policy()
    };
    let out = run(&via(root.join("under")), &nobody).await.unwrap();
    assert_eq!(out.stdout, b"public text");
    let _ = std::fs::remove_dir_all(&root);
}

/// The numbers a command gets its files at, and those its process opens with on
/// the way, stay below a small `open_files` limit however many descriptors the
/// service holds (a daemon with many connections, which any local user can open).
#[tokio::test]
async fn descriptors_fit_a_small_open_files_limit_in_a_busy_service() {
    regent_exec::reserve_path_descriptors().unwrap();
    let root = tree("busy");
    let held: Vec<std::fs::File> = (0..100)
        .map(|_| std::fs::File::open("/dev/null").unwrap())
        .collect();
    let small = ExecPolicy {
        limits: regent_exec::ResourceLimits {
            open_files: Some(48),
            ..Default::default()
        },
        ..policy()
    };
    let mut spec = cat(&root, "public", FileAccess::Read);
    spec.paths.push(PathArg {
        field: "second".into(),
        beneath: root.join("under"),
        path: "private".into(),
        access: FileAccess::Read,
    });
    spec.argv.push(PathArg::placeholder(1));
    let out = run(&spec, &small).await.unwrap();
    assert!(out.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, b"public textprivate text");
    drop(held);
    let _ = std::fs::remove_dir_all(&root);
}
