//! The audit trail: one JSON object per line for every engine decision, operator action and
//! notable data-plane event, with its reason and evidence. Each side writes its own lines
//! through [`AuditLog::write`] (`crate::n3::audit`, `crate::n2::audit`).
//!
//! Each line is written with a single `write` on a file opened in append mode, so lines from
//! concurrent writers never interleave and a crash loses at most the line being written. Nothing
//! is buffered in the process; [`AuditLog::sync`] adds an fsync for callers that want durability
//! at a point (the controller calls it once per tick, not per line).
//!
//! Rotation: a SIGHUP makes every `AuditLog` of the process reopen its path before its next line
//! ([`request_reopen`]), so logrotate's `create` (move, then HUP) works without `copytruncate`;
//! until then, and if the reopen fails, lines keep going to the file already open, never nowhere.
//!
//! Line format (stable keys):
//! `{"ts":"2026-05-01T12:00:00.123Z","actor":"engine","action":"set_device_stage",
//!   "target":"teid:0x00001234","reason":"flood","evidence":{...},"detail":{...}}`

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open audit log {path}: {source}")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("cannot write audit log: {0}")]
    Write(#[from] std::io::Error),
    #[error("cannot encode audit record: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("{path}:{line}: not a JSON audit record: {source}")]
    Read { path: PathBuf, line: usize, source: serde_json::Error },
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    Engine,
    Operator,
    Dataplane,
    /// A fleet pin applied (or not) on this member: the operator who made it is in the detail.
    Fleet,
}

/// One audit line.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// Wall-clock time, RFC 3339 UTC with milliseconds.
    pub ts: String,
    pub actor: Actor,
    pub action: String,
    pub target: String,
    pub reason: String,
    pub evidence: Value,
    /// Everything else the action carries (stage, limit, ttl, refresh, operator, ...).
    pub detail: Value,
}

/// Bumped by [`request_reopen`]; every log compares it with the generation of its open file.
static REOPEN_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Ask every audit log of this process (N3 and N2 controllers alike) to reopen its path before
/// its next line: the SIGHUP half of log rotation.
pub fn request_reopen() {
    REOPEN_GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// Audit lines that could not be written, by any `AuditLog` of this process (the metric
/// `overload_guard_audit_write_failures_total`, and an alert: an audit trail with holes).
pub static WRITE_FAILURES: AtomicU64 = AtomicU64::new(0);

/// An append-only JSON-lines audit log.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<OpenLog>,
}

#[derive(Debug)]
struct OpenLog {
    file: File,
    /// The [`REOPEN_GENERATION`] this file was opened at.
    generation: u64,
}

fn open_append(path: &Path) -> Result<File, AuditError> {
    let err = |source| AuditError::Open { path: path.to_owned(), source };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    OpenOptions::new().create(true).append(true).open(path).map_err(err)
}

impl AuditLog {
    /// Open (creating it and its directory if needed) `path` for appending.
    pub fn open(path: &Path) -> Result<AuditLog, AuditError> {
        let file = open_append(path)?;
        let generation = REOPEN_GENERATION.load(Ordering::SeqCst);
        Ok(AuditLog { path: path.to_owned(), file: Mutex::new(OpenLog { file, generation }) })
    }

    /// Reopen the path now if a reopen was requested since this file was opened. Ok(false):
    /// nothing to do. On an error the old file stays open and in use, and the reopen is tried
    /// again before the next line.
    pub fn reopen_if_requested(&self) -> Result<bool, AuditError> {
        let mut g = self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Self::reopen_locked(&self.path, &mut g)
    }

    fn reopen_locked(path: &Path, g: &mut OpenLog) -> Result<bool, AuditError> {
        let want = REOPEN_GENERATION.load(Ordering::SeqCst);
        if g.generation == want {
            return Ok(false);
        }
        g.file = open_append(path)?;
        g.generation = want;
        Ok(true)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Write one record as one line.
    pub fn write(&self, rec: &AuditRecord) -> Result<(), AuditError> {
        let r = self.write_line(rec);
        if r.is_err() {
            WRITE_FAILURES.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    fn write_line(&self, rec: &AuditRecord) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(rec)?;
        line.push(b'\n');
        // A poisoned lock only means another writer panicked mid-call; the file is still fine.
        let mut g = self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = Self::reopen_locked(&self.path, &mut g) {
            // Keep the trail in the file that is open rather than lose the line.
            tracing::error!(error = %e, "audit log: reopen after SIGHUP failed; still writing to the file open before");
        }
        g.file.write_all(&line)?;
        g.file.flush()?;
        Ok(())
    }

    /// An operator's action whose record was written before it acted ("audit first: if the
    /// trail cannot be written, nothing is done") and that then failed: a second record, same
    /// `action` and `target`, `reason` "failed", with the error, so the trail does not claim what
    /// did not happen. Not writing it is logged: the operator sees the action's own error.
    pub fn record_failed(&self, action: &str, target: &str, error: &str) {
        let rec = AuditRecord {
            ts: rfc3339(std::time::SystemTime::now()),
            actor: Actor::Operator,
            action: action.to_owned(),
            target: target.to_owned(),
            reason: "failed".to_owned(),
            evidence: Value::Null,
            detail: serde_json::json!({ "outcome": "failed", "error": error }),
        };
        if let Err(e) = self.write(&rec) {
            tracing::warn!(error = %e, action, target, "audit: the record of a failed action was not written");
        }
    }

    /// What an operator's `f` did after its record was written: on an error, also
    /// [`AuditLog::record_failed`].
    pub fn then<T, E: std::fmt::Display>(
        &self,
        action: &str,
        target: &str,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let r = f();
        if let Err(e) = &r {
            self.record_failed(action, target, &format!("{e:#}"));
        }
        r
    }

    /// fsync the log (data only).
    pub fn sync(&self) -> Result<(), AuditError> {
        let g = self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        g.file.sync_data()?;
        Ok(())
    }
}

/// Read every record of an audit log (for tests and reports).
pub fn read_audit(path: &Path) -> Result<Vec<Value>, AuditError> {
    let f = File::open(path).map_err(|source| AuditError::Open { path: path.to_owned(), source })?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v = serde_json::from_str(&line).map_err(|source| AuditError::Read {
            path: path.to_owned(),
            line: i + 1,
            source,
        })?;
        out.push(v);
    }
    Ok(out)
}

/// RFC 3339 UTC with milliseconds: `2026-05-01T12:00:00.123Z`. Times before 1970 print as the
/// epoch (the wall clock of a running host is never there).
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days);
    format!("{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z", rem / 3600, rem % 3600 / 60, rem % 60, d.subsec_millis())
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A line with `comment` as its evidence.
    fn line(comment: &str) -> AuditRecord {
        AuditRecord {
            ts: rfc3339(UNIX_EPOCH),
            actor: Actor::Operator,
            action: "unpin".into(),
            target: "teid:0x00000007".into(),
            reason: "operator".into(),
            evidence: serde_json::json!({ "comment": comment }),
            detail: Value::Null,
        }
    }

    /// A path in a fresh directory (its `sub/` not created yet), the directory removed when the
    /// returned guard drops, also when the test panics.
    fn temp_path(name: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::Builder::new().prefix(&format!("guard-audit-{name}-")).tempdir().expect("a temp dir");
        let path = dir.path().join("sub").join("audit.jsonl");
        (dir, path)
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (leap day) 12:34:56.789
        let t = UNIX_EPOCH + Duration::from_millis(951_827_696_789);
        assert_eq!(rfc3339(t), "2000-02-29T12:34:56.789Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_799); // 2099-12-31T23:59:59
        assert_eq!(rfc3339(t), "2099-12-31T23:59:59.000Z");
    }

    #[test]
    fn a_requested_reopen_follows_a_rotated_file() {
        let (_dir, path) = temp_path("rotate");
        let log = AuditLog::open(&path).expect("open");
        log.write(&line("before")).expect("w");
        // logrotate's `create`: move the file away, then signal.
        let moved = path.with_extension("jsonl.1");
        std::fs::rename(&path, &moved).expect("rotate");
        log.write(&line("after move")).expect("w");
        request_reopen();
        log.write(&line("after hup")).expect("w");
        let old = read_audit(&moved).expect("read rotated");
        let new = read_audit(&path).expect("read new");
        assert_eq!(old.len(), 2, "lines before the reopen stay in the rotated file");
        assert_eq!(new.len(), 1, "the first line after the reopen starts the new file");
        assert_eq!(new[0]["evidence"]["comment"], "after hup");
        assert!(!log.reopen_if_requested().expect("no-op"), "nothing requested since");
        let _ = std::fs::remove_dir_all(path.parent().and_then(Path::parent).unwrap_or(&path));
    }

    #[test]
    fn a_corrupt_line_is_reported_with_its_number() {
        let (_dir, path) = temp_path("corrupt");
        let log = AuditLog::open(&path).expect("open");
        log.write(&line("")).expect("w");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(b"{not json\n"))
            .expect("append junk");
        let e = read_audit(&path).expect_err("junk must not parse");
        assert!(e.to_string().contains(":2:"), "{e}");
        let _ = std::fs::remove_dir_all(path.parent().and_then(Path::parent).unwrap_or(&path));
    }
}
