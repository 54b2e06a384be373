//! `regent demo`: the main job on built-in defaults. Starts a service with example
//! operations on a socket in a private (0700) temporary directory, calls it as a
//! client (successes, a validation error, a policy denial, a wrong secret), prints
//! what happened, and stops it. Works as root or not; needs nothing but this binary.

use regent::client::{Client, Outcome};
use regent::server::SharedSecret;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::process::ExitCode;

/// `regent demo`.
#[derive(clap::Args)]
pub struct Args {
    /// Also print each raw JSON response.
    #[arg(long)]
    pub json: bool,
}

struct Step {
    title: &'static str,
    op: &'static str,
    data: Value,
    secret: Option<&'static str>,
    expect: &'static str,
}

pub fn run(args: Args) -> ExitCode {
    let dir = match tempfile::Builder::new().prefix("regent-demo-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("regent demo: cannot create a temporary directory: {e}");
            return ExitCode::from(crate::exit::OTHER);
        }
    };
    // A private directory (0700, this user's): nobody else can reach the socket
    // or bind its path first, and the service refuses a directory others can write.
    if let Err(e) = std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)) {
        eprintln!("regent demo: cannot make the temporary directory private: {e}");
        return ExitCode::from(crate::exit::OTHER);
    }
    let socket = dir.path().join("regent.sock");
    let config = regent::config::demo_config(&socket);
    let secret_text = match regent::auth::random::new_uid() {
        Ok(s) => zeroize::Zeroizing::new(s),
        Err(e) => {
            eprintln!("regent demo: no randomness for a secret: {e}");
            return ExitCode::from(crate::exit::OTHER);
        }
    };
    let secret =
        SharedSecret::from_string(secret_text.to_string()).expect("random secret is not empty");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = runtime.block_on(async {
        let service = regent::daemon::service(&config, Some(secret))?;
        service.spawn()
    });
    let (handle, task) = match started {
        Ok(x) => x,
        Err(e) => {
            eprintln!("regent demo: cannot start the demo service: {e}");
            return ExitCode::from(crate::exit::OTHER);
        }
    };

    println!(
        "Regent demo: a service with {} example operations on {}",
        config.operations.len(),
        socket.display()
    );
    println!("(the same as `regent serve --config FILE` with the built-in demo config; see `regent check`)\n");

    let client = Client::new(&socket).secret(secret_text.as_str());
    let ops = client.call("regent.ops", Value::Null);
    if let Ok(Outcome::Done(Value::Array(list))) = &ops {
        println!("Operations this caller may call (regent.ops):");
        for op in list {
            println!(
                "  {:<10} {}",
                op["name"].as_str().unwrap_or("?"),
                op["description"].as_str().unwrap_or("")
            );
        }
        println!();
    }

    let steps = [
        Step {
            title: "who does the service run as",
            op: "whoami",
            data: Value::Null,
            secret: None,
            expect: "ok",
        },
        Step {
            title: "a validated parameter",
            op: "echo",
            data: json!({"message": "Hello from Regent"}),
            secret: None,
            expect: "ok",
        },
        Step {
            title: "a value the pattern refuses (no shell ever sees it)",
            op: "echo",
            data: json!({"message": "hi; rm -rf /"}),
            secret: None,
            expect: "invalid_data",
        },
        Step {
            title: "an undeclared field",
            op: "echo",
            data: json!({"msg": "hi"}),
            secret: None,
            expect: "invalid_data",
        },
        Step {
            title: "an operation only group regent-admins may call",
            op: "kernel",
            data: Value::Null,
            secret: None,
            expect: "permission_denied",
        },
        Step {
            title: "a wrong secret",
            op: "whoami",
            data: Value::Null,
            secret: Some("not-the-secret"),
            expect: "permission_denied",
        },
        Step {
            title: "an operation that does not exist",
            op: "reboot",
            data: Value::Null,
            secret: None,
            expect: "unknown_operation",
        },
    ];

    let mut surprises = 0;
    for (i, step) in steps.iter().enumerate() {
        let c = match step.secret {
            Some(s) => Client::new(&socket).secret(s),
            None => client.clone(),
        };
        let data_text = if step.data.is_null() {
            String::new()
        } else {
            format!(" --data '{}'", step.data)
        };
        println!(
            "{}. {}:\n   $ regent call {}{}",
            i + 1,
            step.title,
            step.op,
            data_text
        );
        let outcome = c.call(step.op, step.data.clone());
        let got = match &outcome {
            Ok(Outcome::Done(v)) => {
                println!(
                    "   -> ok: {}",
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string())
                );
                "ok".to_string()
            }
            Ok(Outcome::Pending { uid, .. }) => {
                println!("   -> pending ({uid})");
                "pending".to_string()
            }
            Ok(Outcome::Error { code, message }) => {
                let word = code.map(|c| c.as_str()).unwrap_or("error");
                println!("   -> {word}: {message}");
                word.to_string()
            }
            Err(e) => {
                println!("   -> connection error: {e}");
                "connection".to_string()
            }
        };
        if args.json {
            if let Ok(o) = &outcome {
                println!("   {o:?}");
            }
        }
        if got != step.expect {
            println!("   !! expected {}", step.expect);
            surprises += 1;
        }
    }

    handle.shutdown();
    let _ = runtime.block_on(task);
    println!();
    if surprises == 0 {
        println!(
            "All {} calls answered as expected. Service stopped; {} removed.",
            steps.len(),
            socket.display()
        );
        ExitCode::SUCCESS
    } else {
        println!("{surprises} call(s) did not answer as expected.");
        ExitCode::from(crate::exit::FAILED)
    }
}
