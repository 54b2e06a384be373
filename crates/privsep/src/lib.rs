//! Privileged contexts for Rust programs, in the manner of oslo.privsep, with
//! timeouts that stop the work.
//!
//! A program declares a [`Context`] (name, exact capabilities, user, per-call
//! timeout) and narrow, typed entrypoints with [`entrypoints!`]. The macro generates,
//! for each entrypoint, a client function with the same arguments returning
//! `Result<T, PrivsepError>`, and the registry the helper dispatches from.
//!
//! ```no_run
//! use regent_privsep::{Context, Start};
//!
//! static MOTD: Context = Context::new("motd").capabilities(&["CAP_DAC_OVERRIDE"]);
//! regent_privsep::entrypoints! {
//!     context: MOTD;
//!     registry: static MOTD_ENTRYPOINTS;
//!     /// Replace the message of the day.
//!     pub fn update_motd(message: String) -> Result<(), String> {
//!         std::fs::write("/etc/motd", message).map_err(|e| e.to_string())
//!     }
//! }
//!
//! fn main() {
//!     regent_privsep::helper_main(&[&MOTD_ENTRYPOINTS]); // helper-command mode
//!     MOTD_ENTRYPOINTS.start(Start::Fork).unwrap();      // as root, single-threaded
//!     regent_privsep::drop_privileges(1000, 1000).unwrap();
//!     update_motd("hello\n".into()).unwrap().unwrap();   // runs in the helper
//! }
//! ```
//!
//! The helper is a process of its own (forked before the program drops its
//! privileges, or started through `sudo`/`pkexec` running this same program with a
//! hidden argument). It takes on the context's policy with `regent_exec`'s
//! [`regent_exec::Confinement`] (user, groups, capability sets, bounding set,
//! `no_new_privs`), and speaks the Regent protocol over a private socketpair: `op` is
//! the entrypoint's name, `data` an object of its named arguments. It serves that
//! channel through the Regent service's own pipeline ([`regent::Service::serve_stream`]):
//! the arguments are checked before anything runs, and every call leaves one audit
//! record (target `regent::audit`, the daemon's fields) on the helper's stderr
//! through the program's `tracing` subscriber, or a plain one the helper installs
//! when the program has none (see `helper`). Each call runs in a fresh worker
//! process; on timeout the worker and everything it started are killed, the caller
//! gets [`PrivsepError::Timeout`], and the next call works. The helper exits when
//! its client closes the channel or its parent dies.
//!
//! Arguments and results must be owned serde types. Each call is a fork of the helper,
//! so entrypoints keep no state between calls.
//!
//! **Boundaries.** Owns privileged contexts for Rust programs: the client side
//! (`context`, `channel`, `start`), the entrypoint registry (`entrypoints`) and the
//! helper that serves it (`helper`, with one worker process per call in `worker`).
//! Sits above `regent` (layer 5): it may import `regent` (the service, pipeline
//! and audit it serves through), `regent-exec` and `regent-proto`; not
//! `regent-config` or `regent-auth` directly, and never `regent-cli`. Nothing below
//! it imports it.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod channel;
mod context;
mod entrypoints;
mod error;
mod helper;
mod privileges;
mod start;
mod wire;
mod worker;

pub use context::Context;
pub use entrypoints::{Dispatch, Entrypoints, Step};
pub use error::PrivsepError;
pub use privileges::drop_privileges;
pub use regent_proto::Response;
pub use start::Start;
pub use wire::HELPER_FLAG;

/// If this process was started as a helper (`--regent-privsep-helper NAME`), run the
/// helper of the context `NAME` among `registries` and never return; otherwise return
/// at once. Call it first in `main`, before anything else runs.
pub fn helper_main(registries: &[&'static Entrypoints]) {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(std::ffi::OsStr::new(HELPER_FLAG)) {
        return;
    }
    let name = args.next().unwrap_or_default();
    match registries
        .iter()
        .find(|ep| std::ffi::OsStr::new(ep.context().name()) == name)
    {
        Some(ep) => helper::run_commanded(ep),
        None => {
            eprintln!("regent-privsep: no privileged context named {name:?}");
            std::process::exit(2);
        }
    }
}

/// Support for [`entrypoints!`]; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use regent::operation::OpError;
    pub use serde_json::{to_value, Map, Value};

    use serde::de::DeserializeOwned;
    use serde::Serialize;

    /// The named-argument object (`null` counts as empty).
    pub fn args_map(data: Value) -> Result<Map<String, Value>, OpError> {
        match data {
            Value::Object(map) => Ok(map),
            Value::Null => Ok(Map::new()),
            _ => Err(OpError::invalid(
                "",
                "data must be an object of named arguments",
            )),
        }
    }

    /// Take and decode argument `name` (absent counts as `null`, so `Option` may be left out).
    pub fn take_arg<T: DeserializeOwned>(
        map: &mut Map<String, Value>,
        name: &str,
    ) -> Result<T, OpError> {
        let value = map.remove(name).unwrap_or(Value::Null);
        serde_json::from_value(value).map_err(|e| OpError::invalid(name, e.to_string()))
    }

    /// Refuse arguments the entrypoint does not take.
    pub fn no_extra(map: &Map<String, Value>) -> Result<(), OpError> {
        match map.keys().next() {
            None => Ok(()),
            Some(k) => Err(OpError::invalid(k.as_str(), "unknown argument")),
        }
    }

    /// An entrypoint's result, encoded.
    pub fn done<T: Serialize>(value: &T) -> Result<Value, OpError> {
        serde_json::to_value(value)
            .map_err(|e| OpError::Internal(format!("cannot encode the result: {e}")))
    }
}

/// Declare a context's entrypoints.
///
/// ```
/// static MOTD: regent_privsep::Context = regent_privsep::Context::new("motd");
/// regent_privsep::entrypoints! {
///     context: MOTD;                          // a `static Context`
///     registry: pub static MOTD_ENTRYPOINTS;  // the generated `Entrypoints`
///     /// Docs go on the client function.
///     pub fn update_motd(message: String) -> Result<(), String> {
///         std::fs::write("/etc/motd", message).map_err(|e| e.to_string())
///     }
/// }
/// // Not started: the client function says so instead of running anything.
/// assert!(matches!(update_motd("hi".into()), Err(regent_privsep::PrivsepError::NotStarted { .. })));
/// assert_eq!(MOTD_ENTRYPOINTS.names(), ["update_motd"]);
/// ```
///
/// Each `fn` becomes a client function with the same arguments that returns
/// `Result<RET, PrivsepError>` and runs the body in the context's helper. Arguments
/// are sent by name; argument and return types must be owned serde types.
#[macro_export]
macro_rules! entrypoints {
    (
        context: $ctx:path;
        $(#[$rmeta:meta])*
        registry: $rvis:vis static $registry:ident;
        $(
            $(#[$meta:meta])*
            $vis:vis fn $name:ident ( $( $arg:ident : $ty:ty ),* $(,)? ) -> $ret:ty $body:block
        )*
    ) => {
        $(#[$rmeta])*
        $rvis static $registry: $crate::Entrypoints = $crate::Entrypoints::new(
            &$ctx,
            &[$(::core::stringify!($name)),*],
            |__op: &str, __data: $crate::__private::Value, __step: $crate::Step|
             -> ::core::option::Option<::core::result::Result<$crate::__private::Value, $crate::__private::OpError>> {
                $(
                    if __op == ::core::stringify!($name) {
                        fn $name($($arg: $ty),*) -> $ret $body
                        let __run = move || -> ::core::result::Result<$crate::__private::Value, $crate::__private::OpError> {
                            #[allow(unused_mut)]
                            let mut __args = $crate::__private::args_map(__data)?;
                            $( let $arg: $ty = $crate::__private::take_arg(&mut __args, ::core::stringify!($arg))?; )*
                            $crate::__private::no_extra(&__args)?;
                            match __step {
                                $crate::Step::Check => ::core::result::Result::Ok($crate::__private::Value::Null),
                                $crate::Step::Run => $crate::__private::done(&$name($($arg),*)),
                            }
                        };
                        return ::core::option::Option::Some(__run());
                    }
                )*
                let _ = (__data, __step);
                ::core::option::Option::None
            },
        );

        $(
            $(#[$meta])*
            $vis fn $name($($arg: $ty),*) -> ::core::result::Result<$ret, $crate::PrivsepError> {
                #[allow(unused_mut)]
                let mut __args = $crate::__private::Map::new();
                $( __args.insert(::core::stringify!($arg).into(), $crate::__private::to_value(&$arg)?); )*
                $ctx.call(::core::stringify!($name), $crate::__private::Value::Object(__args))
            }
        )*
    };
}
