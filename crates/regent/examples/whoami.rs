//! The seed's first example: a service whose one operation runs `whoami` and
//! returns the service's user.
//!
//! ```text
//! cargo run -p regent --example whoami -- "$XDG_RUNTIME_DIR/regent-whoami.sock" &
//! REGENT_SECRET=123456 regent call whoami --socket "$XDG_RUNTIME_DIR/regent-whoami.sock"
//! printf '{"secret": "123456", "op": "whoami"}\n' | socat - UNIX-CONNECT:"$XDG_RUNTIME_DIR/regent-whoami.sock"
//! ```
//! The socket goes in a directory only its user can write (never `/tmp`, where
//! anyone could bind the path first; the service refuses such a directory). Without
//! an argument: `/run/regent-examples/whoami.sock` (as root).
//! The secret is hard-coded here as in the Python original; a real service reads
//! it from a root-only file (`regent serve --config`).

use regent::exec::{run, CommandSpec, ExecPolicy};
use regent::operation::{Context, OpError, Operation};
use regent::Service;

struct WhoAmI;

impl Operation for WhoAmI {
    type Data = ();
    type Output = String;

    async fn perform(&self, _ctx: Context, _: ()) -> Result<String, OpError> {
        let out = run(&CommandSpec::new(["whoami"]), &ExecPolicy::default())
            .await
            .map_err(|e| OpError::failed(e.to_string()))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let socket = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/run/regent-examples/whoami.sock".into());
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    Service::builder(&socket)
        .mode(0o666)
        .secret_str("123456")
        .register("whoami", WhoAmI)?
        .build()?
        .run()
        .await?;
    Ok(())
}
