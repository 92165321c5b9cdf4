//! `create`, `ls`, `stat`, `write`, `cat`, `rm`, `gc`.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;

use serde_json::{json, Value};
use tmpshm::{
    AuxKind, LockInfo, LockState, ObjectInfo, ObjectKind, SemOptions, ShmDir, ShmOptions,
};

use crate::fmt::{error_line, os_err, owner, show, show_path, unix_seconds, utc, Shown};
use crate::{AlreadyReported, CliError};

pub fn create(
    shm: &ShmDir,
    name: &OsStr,
    size: usize,
    mode: u32,
    exist_ok: bool,
) -> Result<(), CliError> {
    let opts = ShmOptions::new()
        .dir(shm.clone())
        .size(size)
        .mode(tmpshm::Mode::from_bits_truncate(mode as _));
    let obj = if exist_ok {
        opts.open_or_create(name)?
    } else {
        opts.create(name)?
    };
    println!(
        "{} {}: {}, {} bytes",
        if obj.created() { "created" } else { "exists" },
        show(obj.name()),
        show_path(obj.path()),
        obj.len()
    );
    Ok(())
}

/// Why a probe failed, when the cause is the file system's missing `flock(2)` (the errnos the
/// library turns into `ENOSYS` for the creation lock): the errno's own text would mislead
/// (`EOPNOTSUPP` reads "Operation not supported on transport endpoint" on Linux).
fn no_flock(e: nix::errno::Errno) -> Option<String> {
    use nix::errno::Errno;
    matches!(e, Errno::ENOSYS | Errno::EOPNOTSUPP | Errno::ENOLCK).then(|| {
        format!(
            "{e:?}: this file system does not support flock(2), so a held lock file cannot be \
             told from a stale one"
        )
    })
}

fn lock_state_text(state: LockState) -> String {
    match state {
        LockState::Held { pid: Some(pid) } => format!("held by pid {pid}"),
        LockState::Held { pid: None } => "held by a live process".into(),
        LockState::Stale => "stale (no holder; `tmpshm gc` removes it)".into(),
        LockState::Unknown(e) => match no_flock(e) {
            Some(why) => format!("unknown ({why})"),
            None => format!("unknown ({e})"),
        },
    }
}

/// `state`, `pid`, `errno` and `why` of a lock file, as JSON fields.
fn lock_state_json(state: LockState) -> (Value, Value, Value, Value) {
    match state {
        LockState::Held { pid } => (json!("held"), json!(pid), Value::Null, Value::Null),
        LockState::Stale => (json!("stale"), Value::Null, Value::Null, Value::Null),
        LockState::Unknown(e) => {
            let why = no_flock(e).unwrap_or_else(|| e.desc().to_string());
            (
                json!("unknown"),
                Value::Null,
                json!(format!("{e:?}")),
                json!(why),
            )
        }
    }
}

fn object_json(o: &ObjectInfo) -> Value {
    json!({
        "name": show(&o.name).to_string(),
        "path": show_path(&o.path).to_string(),
        "object": o.kind.as_str(),
        "kind": o.file.as_str(),
        "size": o.size,
        "mode": format!("{:04o}", o.mode),
        "uid": o.uid,
        "owner": owner(o.uid),
        "gid": o.gid,
        "nlink": o.nlink,
        "modified": utc(o.modified),
        "modified_unix": unix_seconds(o.modified),
    })
}

fn lock_json(l: &LockInfo) -> Value {
    let (state, pid, errno, why) = lock_state_json(l.state);
    let (kind, name) = match &l.kind {
        AuxKind::Lock { name, .. } => ("lock", json!(show(name).to_string())),
        _ => ("temp", Value::Null),
    };
    let object = match &l.kind {
        AuxKind::Lock { kind, .. } | AuxKind::Temp { kind } => kind.as_str(),
        _ => "unknown",
    };
    json!({
        "kind": kind,
        "object": object,
        "name": name,
        "path": show_path(&l.path).to_string(),
        "uid": l.uid,
        "owner": owner(l.uid),
        "size": l.size,
        "modified": utc(l.modified),
        "state": state,
        "pid": pid,
        "errno": errno,
        "why": why,
    })
}

/// The version of the JSON that `ls --json` and `stat --json` print.
const SCHEMA: u32 = 1;

fn print_json(v: &Value) -> Result<(), CliError> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// `1536` as `1.5K`, `4096` as `4K`, `123` as `123`: sizes in powers of 1024, as `ls -h`
/// shows them (`ls --json` and `stat` give exact bytes).
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if n < 1024 {
        return n.to_string();
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if v < 10.0 && v.fract() != 0.0 {
        format!("{:.1}{}", (v * 10.0).ceil() / 10.0, UNITS[unit])
    } else {
        format!("{:.0}{}", v.ceil(), UNITS[unit])
    }
}

/// A semaphore's value now, or why it cannot be read.
fn sem_value(shm: &ShmDir, name: &OsStr) -> Result<i32, String> {
    let sem = SemOptions::new()
        .dir(shm.clone())
        .open(name)
        .map_err(|e| format!("{:?}", e.errno()))?;
    sem.value().map_err(|e| format!("{:?}", e.errno()))
}

fn info_json(shm: &ShmDir, o: &ObjectInfo) -> Value {
    let mut v = object_json(o);
    if o.kind == ObjectKind::Sem {
        let (value, errno) = match sem_value(shm, &o.name) {
            Ok(n) => (json!(n), Value::Null),
            Err(e) => (Value::Null, json!(e)),
        };
        v["value"] = value;
        v["value_errno"] = errno;
    }
    v
}

/// A file's path, and why every open refuses it, if one does.
fn file_column(o: &ObjectInfo) -> String {
    let mut file = show_path(&o.path).to_string();
    if o.file != tmpshm::FileKind::Regular {
        file.push_str(&format!(" ({}: every open refuses it)", o.file.as_str()));
    } else if o.nlink > 1 {
        file.push_str(&format!(" ({} links: every open refuses it)", o.nlink));
    }
    file
}

pub fn ls(shm: &ShmDir, json: bool) -> Result<(), CliError> {
    let inv = shm.list()?;
    if json {
        return print_json(&json!({
            "schema": SCHEMA,
            "dir": show_path(shm.dir()).to_string(),
            "objects": inv.objects.iter().map(|o| info_json(shm, o)).collect::<Vec<_>>(),
            "locks": inv.locks.iter().map(lock_json).collect::<Vec<_>>(),
        }));
    }
    let (sems, objects): (Vec<&ObjectInfo>, Vec<&ObjectInfo>) =
        inv.objects.iter().partition(|o| o.kind == ObjectKind::Sem);
    println!("{}: objects: {}", show_path(shm.dir()), objects.len());
    let width = |list: &[&ObjectInfo]| {
        list.iter()
            .map(|o| show(&o.name).to_string().chars().count())
            .max()
            .unwrap_or(4)
            .max(4)
    };
    if !objects.is_empty() {
        let w = width(&objects);
        println!(
            "{:<w$}  {:>10}  MODE  {:<8}  {:<20}  FILE",
            "NAME", "SIZE", "OWNER", "MODIFIED"
        );
        for o in &objects {
            println!(
                "{:<w$}  {:>10}  {:04o}  {:<8}  {:<20}  {}",
                show(&o.name),
                human_size(o.size),
                o.mode,
                owner(o.uid),
                utc(o.modified),
                file_column(o)
            );
        }
    }
    if !sems.is_empty() {
        println!("semaphores: {}", sems.len());
        let w = width(&sems);
        println!(
            "{:<w$}  {:>10}  MODE  {:<8}  {:<20}  FILE",
            "NAME", "VALUE", "OWNER", "MODIFIED"
        );
        for o in &sems {
            let value =
                sem_value(shm, &o.name).map_or_else(|e| format!("? {e}"), |v| v.to_string());
            println!(
                "{:<w$}  {:>10}  {:04o}  {:<8}  {:<20}  {}",
                show(&o.name),
                value,
                o.mode,
                owner(o.uid),
                utc(o.modified),
                file_column(o)
            );
        }
    }
    for l in &inv.locks {
        let what = match &l.kind {
            AuxKind::Lock {
                kind: ObjectKind::Sem,
                name,
            } => format!("lock of semaphore {}", show(name)),
            AuxKind::Lock { name, .. } => format!("lock of {}", show(name)),
            _ => "temporary file of a create".to_string(),
        };
        println!(
            "{}: {what}, {}",
            show_path(&l.path),
            lock_state_text(l.state)
        );
    }
    Ok(())
}

pub fn stat(shm: &ShmDir, name: &OsStr, sem: bool, json: bool) -> Result<(), CliError> {
    let kind = if sem {
        ObjectKind::Sem
    } else {
        ObjectKind::Shm
    };
    let info = shm.stat_kind(kind, name)?;
    // Probes that one lock file, not the whole directory.
    let lock = shm.lock_info_kind(kind, name)?;
    if json {
        let mut v = info_json(shm, &info);
        v["lock"] = lock.as_ref().map_or(Value::Null, lock_json);
        v["schema"] = json!(SCHEMA);
        return print_json(&v);
    }
    println!("name:     {}", show(&info.name));
    println!("file:     {}", show_path(&info.path));
    println!("kind:     {} ({})", info.kind.as_str(), info.file.as_str());
    println!("size:     {}", info.size);
    if sem {
        match sem_value(shm, name) {
            Ok(v) => println!("value:    {v}"),
            Err(e) => println!("value:    unknown ({e})"),
        }
    }
    println!("mode:     {:04o}", info.mode);
    println!(
        "owner:    {} (uid {}, gid {})",
        owner(info.uid),
        info.uid,
        info.gid
    );
    println!("links:    {}", info.nlink);
    println!("modified: {}", utc(info.modified));
    match (kind.lock_prefix(shm.layout()), &lock) {
        (_, Some(l)) => println!(
            "lock:     {}: {}",
            show_path(&l.path),
            lock_state_text(l.state)
        ),
        (Some(_), None) => println!("lock:     absent (no one is creating it)"),
        (None, None) => println!("lock:     none in this layout"),
    }
    Ok(())
}

/// How much of stdin `write` holds at a time.
const CHUNK: usize = 1 << 20;

/// Fills `buf` from `r` as far as it goes; fewer bytes only at end of input.
fn read_chunk(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

pub fn write(shm: &ShmDir, name: &OsStr, offset: usize) -> Result<(), CliError> {
    let offset = offset as u64;
    let mut obj = ShmOptions::new().dir(shm.clone()).open(name)?;
    let shown = show(obj.name()).to_string();
    let file_path = show_path(obj.path()).to_string();
    // A second fd on the same open file for the writes; `obj` keeps the checked growth.
    let file = std::fs::File::from(
        obj.as_fd()
            .try_clone_to_owned()
            .map_err(|e| os_err(format!("dup {file_path}"), &e))?,
    );
    // Streamed a chunk at a time: memory stays bounded whatever stdin holds.
    let mut stdin = std::io::stdin().lock();
    let mut buf = vec![0u8; CHUNK];
    let (mut at, mut total, mut grew) = (offset, 0u64, false);
    loop {
        let n = read_chunk(&mut stdin, &mut buf).map_err(|e| os_err("reading stdin", &e))?;
        let end = at
            .checked_add(n as u64)
            .ok_or("offset + length overflows")?;
        // Grown first through the library, which checks the object and never shrinks it; an
        // empty stdin still grows it to --offset.
        let end_len = usize::try_from(end).map_err(|_| "offset + length overflows")?;
        grew |= obj.grow_to(end_len)?;
        file.write_all_at(&buf[..n], at)
            .map_err(|e| os_err(format!("write {file_path}"), &e))?;
        (at, total) = (end, total + n as u64);
        if n < buf.len() {
            break;
        }
    }
    println!(
        "wrote {total} bytes at offset {offset} to {shown}{}",
        if grew {
            format!(" (grown to {at} bytes)")
        } else {
            String::new()
        }
    );
    Ok(())
}

pub fn cat(shm: &ShmDir, name: &OsStr) -> Result<(), CliError> {
    let obj = ShmOptions::new()
        .dir(shm.clone())
        .read_only(true)
        .open(name)?;
    let file_path = show_path(obj.path()).to_string();
    let mut file = std::fs::File::from(obj.into_fd());
    // read(2) (or sendfile/splice) up to end of file, a buffer at a time: bounded memory, and
    // an object that another process shrinks meanwhile just ends sooner (a mapping would
    // raise SIGBUS instead).
    let mut out = std::io::stdout().lock();
    match std::io::copy(&mut file, &mut out).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map_err(|e| os_err(format!("copying {file_path} to stdout"), &e).into()),
    }
}

/// The names to remove: as given, or (`--escaped`) as `ls --json` and the listings print them.
fn rm_names(names: &[OsString], escaped: bool) -> Result<Vec<OsString>, CliError> {
    if !escaped {
        return Ok(names.to_vec());
    }
    names
        .iter()
        .map(|n| {
            let s = n.to_str().ok_or_else(|| {
                Shown(format!(
                    "{}: not an escaped name (escaped names are UTF-8)",
                    show(n)
                ))
            })?;
            let bytes = tmpshm::unescape(s).map_err(|e| Shown(format!("{}: {e}", show(n))))?;
            Ok(OsStr::from_bytes(&bytes).to_os_string())
        })
        .collect()
}

pub fn rm(shm: &ShmDir, names: &[OsString], escaped: bool, sem: bool) -> Result<(), CliError> {
    // Every escaped name is checked before the first is removed.
    let names = rm_names(names, escaped)?;
    let (mut failed, mut usage) = (false, false);
    let sems = SemOptions::new().dir(shm.clone());
    for name in &names {
        let removed = if sem {
            sems.unlink(name.as_os_str())
        } else {
            shm.unlink(name.as_os_str())
        };
        match removed {
            Ok(()) => println!("removed {}", show(name)),
            Err(e) => {
                eprintln!("tmpshm: {}", error_line(&e));
                failed = true;
                usage |= crate::is_usage(&e);
            }
        }
    }
    if failed {
        return Err(AlreadyReported { usage }.into());
    }
    Ok(())
}

pub fn gc(shm: &ShmDir) -> Result<(), CliError> {
    let report = shm.gc()?;
    for p in &report.removed {
        println!("removed {}", show_path(p));
    }
    for p in &report.held {
        println!("kept {}: held by a live process", show_path(p));
    }
    if report.removed.is_empty() && report.failed.is_empty() {
        println!("nothing to collect in {}", show_path(shm.dir()));
    }
    for e in &report.failed {
        eprintln!("tmpshm: {}", error_line(e));
    }
    if !report.failed.is_empty() {
        return Err(AlreadyReported { usage: false }.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_size(0), "0");
        assert_eq!(human_size(1023), "1023");
        assert_eq!(human_size(1024), "1K");
        assert_eq!(human_size(1536), "1.5K");
        assert_eq!(human_size(4096), "4K");
        assert_eq!(human_size(10 * 1024 + 1), "11K");
        assert_eq!(human_size(8 << 20), "8M");
        assert_eq!(human_size(3 << 30), "3G");
    }
}
