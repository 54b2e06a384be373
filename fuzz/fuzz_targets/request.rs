//! The request path of the daemon: bytes from a socket through the framing
//! (`LineBuffer`) into the request decoder (`Request::parse`), and the client's
//! response decoder (`Response::parse`).
//!
//! Input: byte 0 picks the line cap (1..=256), byte 1 seeds the read sizes and
//! whether bytes arrive by `extend` or by `spare`/`commit`; the rest is the stream.
//!
//! Invariants checked:
//! - framing yields exactly the stream's `\n`-separated lines, in order, each at
//!   most the cap and without `\n`, and reports `TooLarge` exactly when a line is
//!   over the cap (never earlier, never later than one byte past the cap);
//! - read in place, the buffer never holds more than cap + 1 pending bytes;
//! - at the end, `finish` says `Truncated` exactly when a partial line is left;
//! - `Request::parse` agrees with reading the line as a whole JSON value;
//! - a parsed request re-encoded with `to_line` parses back to the same request;
//! - a parsed response re-encoded with `to_line` parses back to the same response.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regent_proto::{FrameError, LineBuffer, Request, RequestError, Response};
use serde_json::Value;

fuzz_target!(|input: &[u8]| {
    if input.len() < 2 {
        return;
    }
    let max_line = 1 + input[0] as usize;
    let mut seed = u32::from(input[1]) | 1;
    let stream = &input[2..];

    // The reference: every complete line, and the index of the first one over the cap.
    let mut expected: Vec<&[u8]> = stream.split(|&b| b == b'\n').collect();
    let tail = expected.pop().unwrap_or(&[]);
    let first_too_long = expected.iter().position(|l| l.len() > max_line);

    let mut buf = LineBuffer::new(max_line);
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut fed = 0;
    let mut too_large = false;
    'feed: while fed < stream.len() {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let want = 1 + (seed >> 16) as usize % 64;
        let in_place = seed & 0x8000 != 0;
        let n = if in_place {
            let spare = buf.spare(want);
            let n = spare.len().min(stream.len() - fed);
            spare[..n].copy_from_slice(&stream[fed..fed + n]);
            buf.commit(n);
            n
        } else {
            let n = want.min(stream.len() - fed);
            buf.extend(&stream[fed..fed + n]);
            n
        };
        fed += n;
        if in_place {
            assert!(
                buf.pending_len() <= max_line + 1,
                "read in place, the buffer holds {} bytes over a cap of {max_line}",
                buf.pending_len()
            );
        }
        loop {
            match buf.next_line() {
                Ok(Some(line)) => {
                    assert!(line.len() <= max_line, "a line over the cap was yielded");
                    assert!(!line.contains(&b'\n'), "a yielded line holds a newline");
                    got.push(line);
                }
                Ok(None) => break,
                Err(FrameError::TooLarge) => {
                    too_large = true;
                    break 'feed;
                }
                Err(e) => panic!("next_line gave {e:?}"),
            }
        }
    }

    match first_too_long {
        Some(i) => {
            // Every line before the long one, then TooLarge (read in place, the
            // cap may trip before the newline of the long line arrives).
            assert!(too_large, "line {i} is over the cap and was not refused");
            assert_eq!(got.len(), i, "lines yielded before the long one");
        }
        None if too_large => {
            // Only the unterminated tail may be over the cap.
            assert_eq!(got.len(), expected.len(), "TooLarge before the tail");
            assert!(tail.len() > max_line, "TooLarge for a tail within the cap");
        }
        None => {
            assert_eq!(got.len(), expected.len(), "lost or invented a line");
            assert_eq!(
                buf.finish(),
                if tail.is_empty() {
                    Ok(())
                } else {
                    Err(FrameError::Truncated)
                }
            );
        }
    }
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g.as_slice(), *e, "a yielded line differs from the stream");
    }

    // Each complete line (and the tail) through both decoders.
    for line in expected.iter().chain(std::iter::once(&tail)) {
        check_request(line);
        check_response(line);
    }
});

/// The reading of a request through a whole `serde_json::Value`.
fn reference(line: &[u8]) -> Result<(Option<String>, bool, String, Value), RequestError> {
    let value: Value =
        serde_json::from_slice(line).map_err(|e| RequestError::NotJson(e.to_string()))?;
    let Value::Object(mut map) = value else {
        return Err(RequestError::NotObject);
    };
    let mut take = |k: &'static str| -> Result<Option<String>, RequestError> {
        match map.remove(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(RequestError::WrongType(k, "a string")),
        }
    };
    let secret = take("secret")?;
    let op = take("op")?;
    let uid = take("uid")?;
    let data = map.remove("data").unwrap_or(Value::Null);
    match (op, uid) {
        (Some(op), None) => Ok((secret, true, op, data)),
        (None, Some(uid)) => Ok((secret, false, uid, data)),
        (Some(_), Some(_)) => Err(RequestError::Both),
        (None, None) => Err(RequestError::Neither),
    }
}

/// A request as plain parts: (secret, is a new operation, op or uid, data).
fn parts(r: &Request) -> (Option<String>, bool, String, Value) {
    let secret = r.secret().map(|s| s.expose().to_string());
    match r {
        Request::New { op, data, .. } => (secret, true, op.clone(), data.clone()),
        Request::Continue { uid, data, .. } => (secret, false, uid.clone(), data.clone()),
    }
}

fn check_request(line: &[u8]) {
    let ours = Request::parse(line);
    let theirs = reference(line);
    match (&ours, &theirs) {
        (Ok(a), Ok(b)) => assert!(parts_eq(&parts(a), b), "decoders disagree on a request"),
        (Err(a), Err(b)) => assert_eq!(a, b, "decoders disagree on the error"),
        (a, b) => panic!("decoders disagree: {a:?} vs {b:?}"),
    }
    if let Err(e) = &ours {
        // The message never quotes the input (it could hold the secret).
        if let RequestError::NotJson(m) = e {
            assert!(m.len() < 200, "a long parser message: {m}");
        }
        return;
    }
    let req = ours.unwrap();
    let encoded = req.to_line();
    assert_eq!(encoded.last(), Some(&b'\n'));
    assert!(
        !encoded[..encoded.len() - 1].contains(&b'\n'),
        "an encoded request holds a raw newline"
    );
    let back = Request::parse(&encoded[..encoded.len() - 1]).expect("re-encoded request parses");
    assert!(
        parts_eq(&parts(&back), &parts(&req)),
        "a request does not round-trip"
    );
}

fn check_response(line: &[u8]) {
    let Ok(resp) = Response::parse(line) else {
        return;
    };
    let encoded = resp.to_line();
    assert!(!encoded[..encoded.len() - 1].contains(&b'\n'));
    let back = Response::parse(&encoded[..encoded.len() - 1]).expect("re-encoded response parses");
    let same = match (&resp, &back) {
        (Response::Done(a), Response::Done(b)) => value_eq(a, b),
        (Response::Pending { uid: u, data: a }, Response::Pending { uid: v, data: b }) => {
            u == v && value_eq(a, b)
        }
        (a @ Response::Error { .. }, b @ Response::Error { .. }) => a == b,
        _ => false,
    };
    assert!(same, "a response does not round-trip: {resp:?} vs {back:?}");
}

fn parts_eq(
    a: &(Option<String>, bool, String, Value),
    b: &(Option<String>, bool, String, Value),
) -> bool {
    a.0 == b.0 && a.1 == b.1 && a.2 == b.2 && value_eq(&a.3, &b.3)
}

/// JSON equality, allowing one unit in the last place for floats: serde_json's
/// default float parser is not always correctly rounded, so a float may come
/// back one ULP off after printing (floats never reach a command: parameters
/// accept integers only).
fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() && y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x.to_bits() as i64 - y.to_bits() as i64).abs() <= 1
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| value_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| value_eq(v, w)))
        }
        _ => a == b,
    }
}
