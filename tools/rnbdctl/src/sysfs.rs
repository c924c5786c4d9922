// SPDX-License-Identifier: GPL-2.0

//! Reading and writing the RNBD/RTRS sysfs files, with errors that name the
//! file and say what the kernel's errno means for it.
//!
//! Everything goes through [`Sysfs`], whose root is `/sys` on a real system
//! and a temporary directory in the tests (`RNBDCTL_SYSFS`).

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The sysfs tree the tool works on.
#[derive(Clone, Debug)]
pub struct Sysfs {
    root: PathBuf,
}

/// What was being done when a sysfs access failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Reading a file.
    Read,
    /// Writing a file.
    Write,
    /// Listing a directory.
    List,
}

/// A failed sysfs access: the file, what was done, the OS error.
#[derive(Debug)]
pub struct Error {
    /// The file or directory.
    pub file: PathBuf,
    /// Read, write or list.
    pub op: Op,
    /// What was written, for writes.
    pub value: Option<String>,
    /// The OS error.
    pub err: io::Error,
}

impl Error {
    /// The errno, if the OS gave one.
    pub fn errno(&self) -> Option<i32> {
        self.err.raw_os_error()
    }
}

/// The symbolic name of the errnos the RNBD/RTRS sysfs files return.
pub fn errno_name(e: i32) -> &'static str {
    match e {
        1 => "EPERM",
        2 => "ENOENT",
        5 => "EIO",
        6 => "ENXIO",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        16 => "EBUSY",
        17 => "EEXIST",
        19 => "ENODEV",
        22 => "EINVAL",
        28 => "ENOSPC",
        34 => "ERANGE",
        71 => "EPROTO",
        93 => "EPROTONOSUPPORT",
        104 => "ECONNRESET",
        107 => "ENOTCONN",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        113 => "EHOSTUNREACH",
        114 => "EALREADY",
        _ => "",
    }
}

/// What an errno means when the kernel returns it for a write to `file`
/// (its last component), from the 6.12 modules' code; `None` if nothing
/// more than the errno's own text can be said.
pub fn meaning(file: &str, e: i32) -> Option<&'static str> {
    Some(match (file, e) {
        ("map_device", 17) => "the device is already mapped on this session",
        ("map_device", 6) => "no such session, and no path= given to create it",
        ("map_device", 22) => "the map string was refused (see the kernel log for the token)",
        ("map_device", 93) => "a path address starts with neither ip: nor gid:",
        ("map_device", 12) => "more than 6 paths, or out of memory",
        ("map_device", 110) => "the server did not answer in time",
        ("map_device", 111) => "no server listens on that address and port",
        ("map_device", 104) => "the server closed the connection (see its kernel log)",
        ("unmap_device", 114) => "the device is already being unmapped",
        ("unmap_device", 16) => "the device is open (use --force)",
        ("remap_device", 114) => "the device is open already: nothing to remap",
        ("remap_device", 19) => "the device is unmapped",
        ("remap_device", 16) => "the device is still being mapped",
        ("resize", 22) => "not a size in sectors",
        ("resize", 2) => "the device is not open (its session is down)",
        ("add_path", 17) => "the server has a path with these addresses already",
        ("add_path", 22) => "the address was refused (ip:<IPv4|IPv6>[%scope], [src@]dst)",
        ("reconnect", 107) => "the path did not come up",
        ("mpath_policy", 22) => "not a policy (round-robin|min-inflight|min-latency or 0|1|2)",
        ("max_reconnect_attempts", 22) => "out of range (-1 to 9999)",
        ("max_reconnect_attempts", 34) => "not a number that fits an int",
        ("reset_all", 22) => "only 1 resets the statistics",
        ("disconnect", 22) | ("remove_path", 22) | ("force_close", 22) => "only 1 is accepted",
        (_, 13) => "permission denied: run as root",
        _ => return None,
    })
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match (self.op, &self.value) {
            (Op::Write, Some(v)) => write!(f, "writing '{}' to {}", v.trim_end(), file)?,
            (Op::Write, None) => write!(f, "writing to {}", file)?,
            (Op::Read, _) => write!(f, "reading {}", file)?,
            (Op::List, _) => write!(f, "listing {}", file)?,
        }
        let base = self.file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        match self.errno() {
            Some(e) => {
                let what = io::Error::from_raw_os_error(e).to_string();
                // "Invalid argument (os error 22)" -> "Invalid argument"
                let what = what.split(" (os error").next().unwrap_or(&what).to_string();
                write!(f, ": {}", what)?;
                let name = errno_name(e);
                if !name.is_empty() {
                    write!(f, " ({})", name)?;
                }
                if let Some(m) = meaning(base, e) {
                    write!(f, ": {}", m)?;
                }
                Ok(())
            }
            None => write!(f, ": {}", self.err),
        }
    }
}

impl std::error::Error for Error {}

impl Sysfs {
    /// The tree under `root` (`/sys` on a real system).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Sysfs { root: root.into() }
    }

    /// The path of `rel` (relative to the root, e.g. `class/rtrs-client`).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// True if `rel` exists.
    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).exists()
    }

    /// The content of `rel` without its trailing newline.
    pub fn read(&self, rel: &str) -> Result<String, Error> {
        let p = self.path(rel);
        match fs::read_to_string(&p) {
            Ok(s) => Ok(s.strip_suffix('\n').unwrap_or(&s).to_string()),
            Err(err) => Err(Error {
                file: p,
                op: Op::Read,
                value: None,
                err,
            }),
        }
    }

    /// Writes `value` to `rel` in one write, as `echo` does.
    pub fn write(&self, rel: &str, value: &str) -> Result<(), Error> {
        let p = self.path(rel);
        // O_TRUNC as `echo >`: sysfs ignores it, a plain file (the tests'
        // fake tree) needs it.
        let r = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&p)
            .and_then(|mut f| io::Write::write_all(&mut f, value.as_bytes()));
        r.map_err(|err| Error {
            file: p,
            op: Op::Write,
            value: Some(value.to_string()),
            err,
        })
    }

    /// The names in directory `rel`, sorted; empty if it does not exist.
    pub fn list(&self, rel: &str) -> Result<Vec<String>, Error> {
        let p = self.path(rel);
        let rd = match fs::read_dir(&p) {
            Ok(rd) => rd,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => {
                return Err(Error {
                    file: p,
                    op: Op::List,
                    value: None,
                    err,
                })
            }
        };
        let mut v: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        v.sort();
        Ok(v)
    }

    /// The last component of the symlink `rel` points to.
    pub fn link_name(&self, rel: &str) -> Result<String, Error> {
        let p = self.path(rel);
        fs::read_link(&p)
            .map(|t| {
                Path::new(&t)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .map_err(|err| Error {
                file: p,
                op: Op::Read,
                value: None,
                err,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_file_and_the_meaning() {
        let e = Error {
            file: PathBuf::from("/sys/class/rnbd-client/ctl/map_device"),
            op: Op::Write,
            value: Some("sessname=a device_path=/dev/x\n".into()),
            err: io::Error::from_raw_os_error(17),
        };
        assert_eq!(
            e.to_string(),
            "writing 'sessname=a device_path=/dev/x' to /sys/class/rnbd-client/ctl/map_device: \
             File exists (EEXIST): the device is already mapped on this session"
        );
        let e = Error {
            file: PathBuf::from("/sys/x/state"),
            op: Op::Read,
            value: None,
            err: io::Error::from_raw_os_error(22),
        };
        assert_eq!(
            e.to_string(),
            "reading /sys/x/state: Invalid argument (EINVAL)"
        );
    }
}
