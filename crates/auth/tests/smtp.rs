//! Email authorization through a real SMTP server on loopback (aiosmtpd, started
//! by the test from `tests/smtp_sink.py`), the code read from the delivered mail.
//!
//! Needs Python 3 with aiosmtpd: the interpreter named by `REGENT_TEST_PYTHON`
//! (`.ci/run` sets it to its virtual environment's), else `python3` on PATH, with
//! `python3 -m pip install aiosmtpd`. Without it these tests fail with that
//! instruction (they do not skip).

use regent_auth::{
    AuthFlow, CallerId, FlowOptions, FlowOutcome, Mailer, MethodRegistry, Refusal, SmtpConfig,
    SmtpSecurity, Stage, StartRequest,
};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Sink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python with aiosmtpd: `REGENT_TEST_PYTHON`, else `python3` on PATH.
fn python() -> String {
    std::env::var("REGENT_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn start_sink() -> Sink {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
    let python = python();
    let mut child = Command::new(&python)
        .arg(&script)
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python} is needed for the SMTP tests: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line.trim().is_empty() {
        let status = child.wait().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        panic!(
            "the loopback SMTP server did not start ({status}): {err}\n\
             Install aiosmtpd for {python} (REGENT_TEST_PYTHON, else python3 on PATH): \
             `{python} -m pip install aiosmtpd`"
        );
    }
    let port = line.trim().parse().expect("the sink prints its port");
    Sink { child, port, dir }
}

fn mails(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    v.sort();
    v
}

fn wait_for_mail(dir: &Path, n: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = mails(dir);
        if m.len() >= n {
            return std::fs::read_to_string(&m[n - 1]).unwrap();
        }
        assert!(Instant::now() < deadline, "no mail #{n} delivered");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn code_in(mail: &str) -> String {
    let at = mail
        .find("Authorization code: ")
        .expect("the mail carries the code")
        + "Authorization code: ".len();
    mail[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

fn alice() -> CallerId {
    CallerId::unix(Some(4242), 1000, 100, Some("alice".into()))
}

fn config(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        security: SmtpSecurity::None,
        credentials_file: None,
        from: "Regent <regent@example.org>".into(),
    }
}

fn flow(db: &Path, mailer: Mailer, options: FlowOptions) -> AuthFlow {
    let methods = MethodRegistry::with_builtins(None, Some(Arc::new(mailer)), 6);
    AuthFlow::open(db, methods, options).unwrap()
}

fn request(stages: &[&str]) -> StartRequest {
    StartRequest {
        op: "adduser".into(),
        data: json!({"name": "bob", "password": "s3cret-pw"}),
        display_data: json!({"name": "bob", "password": "<redacted>"}),
        caller: alice(),
        stages: stages.iter().map(|s| Stage::parse(s).unwrap()).collect(),
        ttl: Duration::from_secs(600),
        max_attempts: 5,
        approvers: vec!["admin@example.org".into(), "second@example.org".into()],
        max_pending_per_uid: 100,
        declaration: None,
        preview: None,
    }
}

fn pending(o: FlowOutcome) -> (String, regent_proto::PendingInfo) {
    match o {
        FlowOutcome::Pending { uid, info } => (uid, info),
        other => panic!("expected pending, got {other:?}"),
    }
}

#[tokio::test]
async fn email_then_approval_through_a_real_smtp_server() {
    let sink = start_sink();
    let db = tempfile::tempdir().unwrap();
    let flow = flow(
        &db.path().join("auth.db"),
        Mailer::new(&config(sink.port)).unwrap(),
        FlowOptions::default(),
    );

    let (uid, info) = pending(flow.start(request(&["email", "approval"])).await);
    assert_eq!(info.pending, "email");
    let id = info.extra["request_id"].as_str().unwrap().to_string();
    let mail = wait_for_mail(sink.dir.path(), 1);
    assert!(
        mail.contains("X-Rcpt-To: admin@example.org,second@example.org"),
        "{mail}"
    );
    for needle in [
        id.as_str(),
        "adduser",
        "alice",
        "uid 1000",
        "pid 4242",
        "\"bob\"",
        "<redacted>",
        &info.expires_at,
    ] {
        assert!(mail.contains(needle), "{needle:?} missing from:\n{mail}");
    }
    assert!(
        !mail.contains("s3cret-pw"),
        "only the redacted data is mailed"
    );
    let code = code_in(&mail);
    assert_eq!(code.len(), 6);
    // The code is stored hashed, not in clear.
    let stored = flow.store().by_request_id(&id).unwrap().unwrap();
    let state = stored.stage_state.to_string();
    assert!(
        state.contains("\"hash\"") && !state.contains(&code),
        "{state}"
    );

    let wrong = if code == "000000" { "000001" } else { "000000" };
    let o = flow
        .resume(&uid, &alice(), &json!({"code": wrong}), None)
        .await;
    assert!(
        matches!(o.refusal(), Some(Refusal::WrongCode { .. })),
        "{o:?}"
    );

    let (uid2, info2) = pending(
        flow.resume(&uid, &alice(), &json!({"code": code}), None)
            .await,
    );
    assert_ne!(uid, uid2);
    assert_eq!(info2.pending, "approval");
    assert_eq!(
        flow.resume(&uid, &alice(), &json!({"code": code}), None)
            .await
            .refusal(),
        Some(&Refusal::NotFound)
    );
    assert!(matches!(
        flow.resume(&uid2, &alice(), &Value::Null, None).await,
        FlowOutcome::Pending { .. }
    ));
    let admin = CallerId::unix(None, 0, 0, Some("root".into()));
    flow.approve(&id, &admin, false).await.unwrap();
    match flow.resume(&uid2, &alice(), &Value::Null, None).await {
        FlowOutcome::Run { op, data, .. } => {
            assert_eq!(op, "adduser");
            assert_eq!(data, json!({"name": "bob", "password": "s3cret-pw"}));
        }
        other => panic!("expected run, got {other:?}"),
    }
}

#[tokio::test]
async fn a_refused_connection_answers_operation_failed_without_smtp_details() {
    // A port with nothing listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let db = tempfile::tempdir().unwrap();
    let flow = flow(
        &db.path().join("auth.db"),
        Mailer::new(&config(port)).unwrap(),
        FlowOptions::default(),
    );
    let o = flow.start(request(&["email"])).await;
    let FlowOutcome::Refused(refusal) = &o else {
        panic!("expected an error, got {o:?}")
    };
    assert_eq!(
        refusal,
        &Refusal::Unavailable(Some("The authorization email could not be sent".into()))
    );
    assert!(
        flow.list_waiting().await.unwrap().is_empty(),
        "the request is dropped"
    );
}

#[tokio::test]
async fn a_late_failure_is_answered_at_the_next_poll() {
    // A server that accepts and never greets: the send times out after 1 s, while
    // the engine waits only 50 ms and answers pending meanwhile.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let db = tempfile::tempdir().unwrap();
    let mailer = Mailer::with_timeout(&config(port), Duration::from_secs(1)).unwrap();
    let flow = flow(
        &db.path().join("auth.db"),
        mailer,
        FlowOptions {
            delivery_wait: Duration::from_millis(50),
            ..FlowOptions::default()
        },
    );
    let mut req = request(&["email"]);
    req.max_attempts = 1000;
    let (uid, _) = pending(flow.start(req).await);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let o = flow
            .resume(&uid, &alice(), &json!({"code": "123456"}), None)
            .await;
        match o.refusal() {
            // Not failed yet: a wrong code counts; keep within the attempt limit.
            Some(Refusal::WrongCode { .. }) => {}
            Some(Refusal::Unavailable(_)) => break,
            other => panic!("unexpected {other:?}: {o:?}"),
        }
        assert!(Instant::now() < deadline, "the failure never surfaced");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(
        flow.resume(&uid, &alice(), &json!({"code": "1"}), None)
            .await
            .refusal(),
        Some(&Refusal::NotFound)
    );
    drop(listener);
}
