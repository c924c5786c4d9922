// SPDX-License-Identifier: GPL-2.0

//! rnbdctl: RNBD/RTRS from the command line, through sysfs only, so the same
//! binary drives rnbd-rs and the upstream Linux 6.12 modules.
//!
//! Exit codes: 0 done; 1 the kernel refused a write (the message names the
//! file, the errno and what it means there); 2 usage; 3 no such device,
//! session or path; 4 the modules are not loaded; 5 a sysfs file held
//! something unexpected, or output failed.

mod args;
mod cli;
mod model;
mod output;
mod sysfs;

use clap::Parser;
use cli::{Cli, ClientCmd, Cmd, Mode, PathCmd, PolicyArg, ServerCmd, What};
use output::{latency, same, size, Format, Table};
use std::io::Write;
use std::process::ExitCode;
use sysfs::Sysfs;

/// A failed command and its exit code.
#[derive(Debug)]
enum Fail {
    /// The kernel refused (or a file could not be read).
    Sysfs(sysfs::Error),
    /// A bad argument.
    Arg(String),
    /// No such object.
    NotFound(String),
    /// A module's sysfs class is missing.
    NotLoaded(&'static str),
    /// Output failed.
    Io(std::io::Error),
}

impl From<sysfs::Error> for Fail {
    fn from(e: sysfs::Error) -> Self {
        Fail::Sysfs(e)
    }
}
impl From<args::ArgError> for Fail {
    fn from(e: args::ArgError) -> Self {
        Fail::Arg(e.0)
    }
}
impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Self {
        Fail::Io(e)
    }
}

impl Fail {
    fn code(&self) -> u8 {
        match self {
            Fail::Sysfs(e) if e.err.kind() == std::io::ErrorKind::InvalidData => 5,
            Fail::Sysfs(_) => 1,
            Fail::Arg(_) => 2,
            Fail::NotFound(_) => 3,
            Fail::NotLoaded(_) => 4,
            Fail::Io(_) => 5,
        }
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Sysfs(e) => write!(f, "{}", e),
            Fail::Arg(s) | Fail::NotFound(s) => f.write_str(s),
            Fail::NotLoaded(m) => write!(f, "module {} is not loaded (modprobe {})", m, m),
            Fail::Io(e) => write!(f, "output: {}", e),
        }
    }
}

type Res = Result<(), Fail>;

struct Ctx {
    s: Sysfs,
    fmt: Format,
    out: std::io::Stdout,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let fmt = if cli.json {
        Format::Json
    } else if cli.csv {
        Format::Csv
    } else {
        Format::Table
    };
    let mut cx = Ctx {
        s: Sysfs::new(&cli.sysfs),
        fmt,
        out: std::io::stdout(),
    };
    let r = match cli.cmd {
        Cmd::Client(c) => client(&mut cx, c),
        Cmd::Server(c) => server(&mut cx, c),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rnbdctl: {}", e);
            ExitCode::from(e.code())
        }
    }
}

fn need(s: &Sysfs, dir: &str, module: &'static str) -> Res {
    if s.exists(dir) {
        Ok(())
    } else {
        Err(Fail::NotLoaded(module))
    }
}

/// `rnbd0`, `/dev/rnbd0`, or a mapping path (the server's device path):
/// the device's name.
fn find_device(s: &Sysfs, d: &str) -> Result<String, Fail> {
    let name = d.strip_prefix("/dev/").unwrap_or(d);
    if name.starts_with("rnbd") && s.exists(&format!("{}/{}/rnbd", model::BLOCK, name)) {
        return Ok(name.to_string());
    }
    let hits: Vec<model::Device> = model::devices(s)?
        .into_iter()
        .filter(|x| x.mapping_path == d)
        .collect();
    match hits.len() {
        1 => Ok(hits[0].name.clone()),
        0 => Err(Fail::NotFound(format!("no mapped device '{}'", d))),
        _ => Err(Fail::Arg(format!(
            "'{}' is mapped over several sessions ({}): name the rnbd device",
            d,
            hits.iter()
                .map(|x| format!("{} on {}", x.name, x.session))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn find_session(s: &Sysfs, n: &str) -> Result<String, Fail> {
    if !n.is_empty() && !n.contains('/') && s.exists(&format!("{}/{}", model::CLT_SESS, n)) {
        Ok(n.to_string())
    } else {
        Err(Fail::NotFound(format!("no session '{}'", n)))
    }
}

/// A path of `sess` by its name (`src@dst`) or its destination address
/// (with or without `ip:`), as the user gives it.
fn find_path(s: &Sysfs, sess: &str, p: &str) -> Result<String, Fail> {
    let paths = s.list(&format!("{}/{}/paths", model::CLT_SESS, sess))?;
    if paths.iter().any(|x| x == p) {
        return Ok(p.to_string());
    }
    let want = args::addr(p, &args::system_resolver).unwrap_or_default();
    let hits: Vec<&String> = paths
        .iter()
        .filter(|x| x.split('@').nth(1) == Some(want.as_str()))
        .collect();
    match hits.len() {
        1 => Ok(hits[0].clone()),
        0 => Err(Fail::NotFound(format!(
            "session '{}' has no path '{}' (paths: {})",
            sess,
            p,
            paths.join(" ")
        ))),
        _ => Err(Fail::Arg(format!(
            "'{}' matches several paths of '{}': give src@dst",
            p, sess
        ))),
    }
}

fn devices_table(v: &[model::Device]) -> Table {
    let mut t = Table::new(vec![
        "device",
        "session",
        "mapping_path",
        "access_mode",
        "state",
        "size",
    ]);
    for d in v {
        t.row(vec![
            same(&d.name),
            same(&d.session),
            same(&d.mapping_path),
            same(&d.access_mode),
            same(&d.state),
            size(d.size_bytes),
        ]);
    }
    t
}

fn sessions_table(v: &[model::ClientSession], devs: &[model::Device]) -> Table {
    let mut t = Table::new(vec![
        "session",
        "policy",
        "paths",
        "connected",
        "devices",
        "max_reconnect_attempts",
    ]);
    for x in v {
        let up = x.paths.iter().filter(|p| p.state == "connected").count();
        let nd = devs.iter().filter(|d| d.session == x.name).count();
        t.row(vec![
            same(&x.name),
            same(&x.mpath_policy),
            same(x.paths.len()),
            same(up),
            same(nd),
            same(x.max_reconnect_attempts),
        ]);
    }
    t
}

/// Paths with their session, for `list paths`, `show` and `stats`.
#[derive(serde::Serialize)]
struct SessPath<'a> {
    session: &'a str,
    #[serde(flatten)]
    path: &'a model::ClientPath,
}

fn paths_table(v: &[model::ClientSession]) -> (Table, Vec<SessPath<'_>>) {
    let mut t = Table::new(vec![
        "session",
        "path",
        "state",
        "hca",
        "latency",
        "reads",
        "read",
        "writes",
        "written",
        "inflight",
        "failovers",
        "reconnects",
    ]);
    let mut j = Vec::new();
    for x in v {
        for p in &x.paths {
            let st = &p.stats;
            t.row(vec![
                same(&x.name),
                same(&p.name),
                same(&p.state),
                same(format!("{}:{}", p.hca_name, p.hca_port)),
                latency(p.cur_latency_ns),
                same(st.reads),
                size(st.read_bytes),
                same(st.writes),
                size(st.write_bytes),
                same(st.inflight.unwrap_or(0)),
                same(st.failovers.unwrap_or(0)),
                same(format!(
                    "{}/{}",
                    st.reconnects.unwrap_or(0),
                    st.reconnect_failures.unwrap_or(0)
                )),
            ]);
            j.push(SessPath {
                session: &x.name,
                path: p,
            });
        }
    }
    (t, j)
}

fn client(cx: &mut Ctx, c: ClientCmd) -> Res {
    let s = cx.s.clone();
    need(&s, model::CLT_CTL, "rnbd_client")?;
    match c {
        ClientCmd::Map(a) => {
            let mut mode = None;
            let mut paths = Vec::new();
            for r in &a.rest {
                match r.as_str() {
                    "ro" => mode = Some(Mode::Ro),
                    "rw" => mode = Some(Mode::Rw),
                    "migration" => mode = Some(Mode::Migration),
                    p => paths.push(args::path(p, &args::system_resolver)?),
                }
            }
            let exists = s.exists(&format!("{}/{}", model::CLT_SESS, a.session));
            if !exists && paths.is_empty() {
                return Err(Fail::Arg(format!(
                    "session '{}' does not exist: give its paths",
                    a.session
                )));
            }
            if paths.len() > 6 {
                return Err(Fail::Arg("at most 6 paths".into()));
            }
            let mut m = String::new();
            if let Some(p) = a.port {
                m += &format!("dest_port={} ", p);
            }
            m += &format!("sessname={}", a.session);
            for p in &paths {
                m += &format!(" path={}", p);
            }
            m += &format!(" device_path={}", a.device_path);
            if let Some(mo) = mode {
                m += match mo {
                    Mode::Ro => " access_mode=ro",
                    Mode::Rw => " access_mode=rw",
                    Mode::Migration => " access_mode=migration",
                };
            }
            if let Some(q) = a.poll_queues {
                m += &format!(" nr_poll_queues={}", q);
            }
            let before: Vec<String> = model::devices(&s)?.into_iter().map(|d| d.name).collect();
            s.write(&format!("{}/map_device", model::CLT_CTL), &m)?;
            let new: Vec<model::Device> = model::devices(&s)?
                .into_iter()
                .filter(|d| !before.contains(&d.name))
                .collect();
            let t = devices_table(&new);
            output::print(&mut cx.out, cx.fmt, "devices", &t, &new)?;
        }
        ClientCmd::Unmap { device, force } => {
            let n = find_device(&s, &device)?;
            let mode = if force { "force" } else { "normal" };
            s.write(&format!("{}/{}/rnbd/unmap_device", model::BLOCK, n), mode)?;
        }
        ClientCmd::Resize { device, size } => {
            let n = find_device(&s, &device)?;
            let sec = args::sectors(&size)?;
            s.write(
                &format!("{}/{}/rnbd/resize", model::BLOCK, n),
                &sec.to_string(),
            )?;
        }
        ClientCmd::Remap { target } => {
            let devs = model::devices(&s)?;
            let names: Vec<String> = match find_device(&s, &target) {
                Ok(n) => vec![n],
                Err(_) => {
                    let sess = find_session(&s, &target)?;
                    devs.iter()
                        .filter(|d| d.session == sess)
                        .map(|d| d.name.clone())
                        .collect()
                }
            };
            for n in names {
                s.write(&format!("{}/{}/rnbd/remap_device", model::BLOCK, n), "1")?;
            }
        }
        ClientCmd::List { what } => match what {
            What::Devices => {
                let v = model::devices(&s)?;
                output::print(&mut cx.out, cx.fmt, "devices", &devices_table(&v), &v)?;
            }
            What::Sessions => {
                let v = model::client_sessions(&s)?;
                let d = model::devices(&s)?;
                output::print(&mut cx.out, cx.fmt, "sessions", &sessions_table(&v, &d), &v)?;
            }
            What::Paths => {
                let v = model::client_sessions(&s)?;
                let (t, j) = paths_table(&v);
                output::print(&mut cx.out, cx.fmt, "paths", &t, &j)?;
            }
        },
        ClientCmd::Show { target } => {
            let (sess, dev) = match find_device(&s, &target) {
                Ok(n) => {
                    let d = model::device(&s, &n)?;
                    (d.session.clone(), vec![d])
                }
                Err(_) => {
                    let n = find_session(&s, &target)?;
                    let devs = model::devices(&s)?
                        .into_iter()
                        .filter(|d| d.session == n)
                        .collect();
                    (n, devs)
                }
            };
            let ss = vec![model::client_session(&s, &sess)?];
            show(cx, &dev, &ss)?;
        }
        ClientCmd::Path(p) => match p {
            PathCmd::Add { session, path } => {
                let n = find_session(&s, &session)?;
                let p = args::path(&path, &args::system_resolver)?;
                s.write(&format!("{}/{}/add_path", model::CLT_SESS, n), &p)?;
            }
            PathCmd::Remove { session, path } => path_op(&s, &session, &path, "remove_path")?,
            PathCmd::Disconnect { session, path } => path_op(&s, &session, &path, "disconnect")?,
            PathCmd::Reconnect { session, path } => path_op(&s, &session, &path, "reconnect")?,
        },
        ClientCmd::Policy { session, policy } => {
            let n = find_session(&s, &session)?;
            let v = match policy {
                PolicyArg::Rr => "round-robin",
                PolicyArg::Mi => "min-inflight",
                PolicyArg::Ml => "min-latency",
            };
            s.write(&format!("{}/{}/mpath_policy", model::CLT_SESS, n), v)?;
        }
        ClientCmd::Stats { session, reset } => {
            let v = match session {
                Some(n) => vec![model::client_session(&s, &find_session(&s, &n)?)?],
                None => model::client_sessions(&s)?,
            };
            if reset {
                for x in &v {
                    for p in &x.paths {
                        s.write(
                            &format!(
                                "{}/{}/paths/{}/stats/reset_all",
                                model::CLT_SESS,
                                x.name,
                                p.name
                            ),
                            "1",
                        )?;
                    }
                }
            } else {
                let (t, j) = paths_table(&v);
                output::print(&mut cx.out, cx.fmt, "paths", &t, &j)?;
            }
        }
    }
    Ok(())
}

fn path_op(s: &Sysfs, session: &str, path: &str, file: &str) -> Res {
    let n = find_session(s, session)?;
    let p = find_path(s, &n, path)?;
    s.write(
        &format!("{}/{}/paths/{}/{}", model::CLT_SESS, n, p, file),
        "1",
    )?;
    Ok(())
}

/// A device or session with its paths: two tables, or one JSON object.
fn show(cx: &mut Ctx, devs: &[model::Device], ss: &[model::ClientSession]) -> Res {
    if cx.fmt == Format::Json {
        #[derive(serde::Serialize)]
        struct Show<'a> {
            schema_version: u32,
            devices: &'a [model::Device],
            sessions: &'a [model::ClientSession],
        }
        let v = Show {
            schema_version: model::SCHEMA_VERSION,
            devices: devs,
            sessions: ss,
        };
        serde_json::to_writer_pretty(&mut cx.out, &v).map_err(std::io::Error::other)?;
        writeln!(cx.out)?;
        return Ok(());
    }
    let empty: [u8; 0] = [];
    output::print(&mut cx.out, cx.fmt, "devices", &devices_table(devs), &empty)?;
    if cx.fmt == Format::Table {
        writeln!(cx.out)?;
    }
    let (t, _) = paths_table(ss);
    output::print(&mut cx.out, cx.fmt, "paths", &t, &empty)?;
    Ok(())
}

fn server(cx: &mut Ctx, c: ServerCmd) -> Res {
    let s = cx.s.clone();
    need(&s, "class/rnbd-server/ctl", "rnbd_server")?;
    match c {
        ServerCmd::List { what } => match what {
            What::Devices => {
                let v = model::server_devices(&s)?;
                output::print(&mut cx.out, cx.fmt, "devices", &srv_devices_table(&v), &v)?;
            }
            What::Sessions => {
                let v = model::server_sessions(&s)?;
                let d = model::server_devices(&s)?;
                let mut t = Table::new(vec!["session", "paths", "devices"]);
                for x in &v {
                    let nd = d
                        .iter()
                        .filter(|dv| dv.sessions.iter().any(|ds| ds.name == x.name))
                        .count();
                    t.row(vec![same(&x.name), same(x.paths.len()), same(nd)]);
                }
                output::print(&mut cx.out, cx.fmt, "sessions", &t, &v)?;
            }
            What::Paths => {
                let v = model::server_sessions(&s)?;
                output::print(&mut cx.out, cx.fmt, "sessions", &srv_paths_table(&v), &v)?;
            }
        },
        ServerCmd::Show { target } => {
            let devs: Vec<model::ServerDevice> = model::server_devices(&s)?
                .into_iter()
                .filter(|d| d.name == target || d.sessions.iter().any(|x| x.name == target))
                .collect();
            let ss: Vec<model::ServerSession> = model::server_sessions(&s)?
                .into_iter()
                .filter(|x| {
                    x.name == target
                        || devs
                            .iter()
                            .any(|d| d.sessions.iter().any(|ds| ds.name == x.name))
                })
                .collect();
            if devs.is_empty() && ss.is_empty() {
                return Err(Fail::NotFound(format!(
                    "no exported device or session '{}'",
                    target
                )));
            }
            if cx.fmt == Format::Json {
                let v = serde_json::json!({
                    "schema_version": model::SCHEMA_VERSION,
                    "devices": devs,
                    "sessions": ss,
                });
                serde_json::to_writer_pretty(&mut cx.out, &v).map_err(std::io::Error::other)?;
                writeln!(cx.out)?;
            } else {
                let empty: [u8; 0] = [];
                output::print(
                    &mut cx.out,
                    cx.fmt,
                    "devices",
                    &srv_devices_table(&devs),
                    &empty,
                )?;
                if cx.fmt == Format::Table {
                    writeln!(cx.out)?;
                }
                output::print(
                    &mut cx.out,
                    cx.fmt,
                    "sessions",
                    &srv_paths_table(&ss),
                    &empty,
                )?;
            }
        }
        ServerCmd::Close { device, session } => {
            let d = format!("{}/{}", model::SRV_DEVS, device);
            if !s.exists(&d) {
                return Err(Fail::NotFound(format!("no exported device '{}'", device)));
            }
            let sessions = s.list(&format!("{}/sessions", d))?;
            let which: Vec<&String> = match &session {
                Some(n) => {
                    let v: Vec<&String> = sessions.iter().filter(|x| *x == n).collect();
                    if v.is_empty() {
                        return Err(Fail::NotFound(format!(
                            "session '{}' does not use '{}'",
                            n, device
                        )));
                    }
                    v
                }
                None => sessions.iter().collect(),
            };
            for n in which {
                s.write(&format!("{}/sessions/{}/force_close", d, n), "1")?;
            }
        }
        ServerCmd::Disconnect { target } => {
            let (sess, path) = match target.split_once('/') {
                Some((a, b)) => (a.to_string(), Some(b.to_string())),
                None => (target.clone(), None),
            };
            let pd = format!("{}/{}/paths", model::SRV_SESS, sess);
            if sess.is_empty() || !s.exists(&pd) {
                return Err(Fail::NotFound(format!("no server session '{}'", sess)));
            }
            let paths = s.list(&pd)?;
            let which: Vec<&String> = match &path {
                Some(p) => {
                    let v: Vec<&String> = paths.iter().filter(|x| *x == p).collect();
                    if v.is_empty() {
                        return Err(Fail::NotFound(format!(
                            "session '{}' has no path '{}' (paths: {})",
                            sess,
                            p,
                            paths.join(" ")
                        )));
                    }
                    v
                }
                None => paths.iter().collect(),
            };
            for p in which {
                s.write(&format!("{}/{}/disconnect", pd, p), "1")?;
            }
        }
    }
    Ok(())
}

fn srv_devices_table(v: &[model::ServerDevice]) -> Table {
    let mut t = Table::new(vec![
        "device",
        "block_dev",
        "session",
        "access_mode",
        "read_only",
        "mapping_path",
    ]);
    for d in v {
        for x in &d.sessions {
            t.row(vec![
                same(&d.name),
                same(&d.block_dev),
                same(&x.name),
                same(&x.access_mode),
                same(x.read_only),
                same(&x.mapping_path),
            ]);
        }
    }
    t
}

fn srv_paths_table(v: &[model::ServerSession]) -> Table {
    let mut t = Table::new(vec![
        "session", "path", "hca", "reads", "read", "writes", "written",
    ]);
    for x in v {
        for p in &x.paths {
            t.row(vec![
                same(&x.name),
                same(&p.name),
                same(format!("{}:{}", p.hca_name, p.hca_port)),
                same(p.stats.reads),
                size(p.stats.read_bytes),
                same(p.stats.writes),
                size(p.stats.write_bytes),
            ]);
        }
    }
    t
}
