//! The response hook: how the N2 controller's [`Response`]s reach whatever can act on them (an
//! AMF's management interface, an OAM system, a script).
//!
//! Two kinds, both given the same versioned JSON document ([`Response`], `schema`
//! `overload-guard/n2-response`, `version` [`RESPONSE_VERSION`]):
//! - `exec`: run a program (no shell) with the JSON on its stdin, one document and a newline;
//!   `OVERLOAD_GUARD_ACTION` and `OVERLOAD_GUARD_LEVEL` are set in its environment. Exit status 0
//!   is success; it is killed after the timeout.
//! - `webhook`: an HTTP/1.1 `POST` of the JSON (`Content-Type: application/json`) to a plain
//!   `http://host:port/path` URL (put a local TLS-terminating proxy in front for anything else).
//!   Any 2xx status is success.
//!
//! Calls block (at most the timeout): the controller runs them off its tick (a blocking task).
//! A failed call is logged, audited and counted; the next refresh re-sends the whole state.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::engine::{Response, RESPONSE_VERSION};
pub use crate::config::n2::{parse_url, HookSpec, HookSpecError};

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("hook: cannot encode the response: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("hook: cannot run {program}: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("hook: {program} exited with {status}")]
    Exit { program: String, status: std::process::ExitStatus },
    #[error("hook: {what} did not finish within {timeout:?}")]
    Timeout { what: String, timeout: Duration },
    #[error("hook: webhook {url}: {source}")]
    Http { url: String, source: std::io::Error },
    #[error("hook: webhook {url} answered {status_line:?}")]
    Status { url: String, status_line: String },
    /// The `[hook]` settings themselves are wrong (checked when the file is read).
    #[error(transparent)]
    Spec(#[from] HookSpecError),
}

/// A validated hook.
#[derive(Debug, Clone)]
pub struct Hook {
    spec: HookSpec,
}

impl Hook {
    pub fn new(spec: HookSpec) -> Result<Hook, HookError> {
        spec.check()?;
        Ok(Hook { spec })
    }

    /// Deliver one response (blocking, bounded by the timeout).
    pub fn send(&self, r: &Response) -> Result<(), HookError> {
        debug_assert_eq!(r.version, RESPONSE_VERSION);
        let mut body = serde_json::to_vec(r)?;
        match &self.spec {
            HookSpec::Exec { command, timeout_ms } => {
                body.push(b'\n');
                exec(command, &body, r, Duration::from_millis(*timeout_ms))
            }
            HookSpec::Webhook { url, timeout_ms } => post(url, &body, Duration::from_millis(*timeout_ms)),
        }
    }
}

/// Whether `program` names an executable file: a path as given, or a bare name on `PATH` (what
/// `Command` will run).
fn exec(command: &[String], body: &[u8], r: &Response, timeout: Duration) -> Result<(), HookError> {
    let (program, args) = command.split_first().ok_or(HookError::Spec(HookSpecError::EmptyCommand))?;
    let action = serde_json::to_value(r.action)?;
    let mut child = Command::new(program)
        .args(args)
        .env("OVERLOAD_GUARD_ACTION", action.as_str().unwrap_or(""))
        .env("OVERLOAD_GUARD_LEVEL", r.level.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|source| HookError::Spawn { program: program.clone(), source })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its input is its own business; a broken pipe is not an error.
        let _ = stdin.write_all(body);
    }
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(HookError::Exit { program: program.clone(), status }),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HookError::Timeout { what: program.clone(), timeout });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(source) => return Err(HookError::Spawn { program: program.clone(), source }),
        }
    }
}

fn post(url: &str, body: &[u8], timeout: Duration) -> Result<(), HookError> {
    let (hostport, path) = parse_url(url)?;
    let http = |source| HookError::Http { url: url.to_owned(), source };
    let addr = hostport
        .to_socket_addrs()
        .map_err(http)?
        .next()
        .ok_or_else(|| http(std::io::Error::new(std::io::ErrorKind::NotFound, "no address")))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(http)?;
    s.set_read_timeout(Some(timeout)).map_err(http)?;
    s.set_write_timeout(Some(timeout)).map_err(http)?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         X-Overload-Guard-Version: {RESPONSE_VERSION}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).map_err(http)?;
    s.write_all(body).map_err(http)?;
    // The status line is all that matters; read until its end (bounded).
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    while !buf.contains(&b'\n') && buf.len() < 4096 {
        let n = s.read(&mut chunk).map_err(|e| {
            if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
                HookError::Timeout { what: url.to_owned(), timeout }
            } else {
                http(e)
            }
        })?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf).lines().next().unwrap_or("").to_owned();
    let code = line.split_whitespace().nth(1).and_then(|c| c.parse::<u16>().ok());
    match code {
        Some(c) if (200..300).contains(&c) => Ok(()),
        _ => Err(HookError::Status { url: url.to_owned(), status_line: line }),
    }
}
