// SPDX-License-Identifier: GPL-2.0

// The command line (clap derive).  Also included by build.rs, which
// generates the man page and the shell completions from it: it must not
// use anything else of the crate.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Manage RNBD block devices and RTRS sessions over their sysfs interface
/// (rnbd-rs and the upstream Linux modules alike).
#[derive(Parser, Debug)]
#[command(name = "rnbdctl", version, about, long_about = None)]
pub struct Cli {
    /// Output as JSON (schema in the README; `schema_version` says its version).
    #[arg(long, global = true, conflicts_with = "csv")]
    pub json: bool,
    /// Output as CSV, with a header line.
    #[arg(long, global = true)]
    pub csv: bool,
    /// Root of the sysfs tree (for tests).
    #[arg(
        long,
        global = true,
        env = "RNBDCTL_SYSFS",
        default_value = "/sys",
        hide = true
    )]
    pub sysfs: String,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// The client side: mapped devices, sessions, paths.
    #[command(subcommand)]
    Client(ClientCmd),
    /// The server side: exported devices, sessions, paths.
    #[command(subcommand)]
    Server(ServerCmd),
}

/// Access mode of a mapping.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Read-only.
    Ro,
    /// Read-write (the default).
    Rw,
    /// Read-write, shared with another client during a migration.
    Migration,
}

/// Multipath policy.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyArg {
    /// Round-robin.
    #[value(alias = "round-robin")]
    Rr,
    /// Fewest requests in flight (the default).
    #[value(alias = "min-inflight")]
    Mi,
    /// Lowest heartbeat round trip.
    #[value(alias = "min-latency")]
    Ml,
}

/// Client commands.
#[derive(Subcommand, Debug)]
pub enum ClientCmd {
    /// Map a remote device: `map <device_path> from <session> [path...]`.
    Map(MapArgs),
    /// Unmap a device (rnbdX, /dev/rnbdX or the server's device path).
    Unmap {
        /// rnbdX, /dev/rnbdX, or the mapping path on the server.
        device: String,
        /// Unmap even if the device is open.
        #[arg(long)]
        force: bool,
    },
    /// Change a device's size (with units: 512, 4k, 10G, 1T; bytes,
    /// rounded down to 512-byte sectors).
    Resize {
        /// rnbdX or /dev/rnbdX.
        device: String,
        /// New size.
        size: String,
    },
    /// Re-open a device on its server, or every device of a session.
    Remap {
        /// rnbdX, /dev/rnbdX or a session name.
        target: String,
    },
    /// List the mapped devices (default), sessions or paths.
    List {
        /// What to list.
        #[arg(value_enum, default_value_t = What::Devices)]
        what: What,
    },
    /// Show one device or session, with its paths.
    Show {
        /// rnbdX, /dev/rnbdX or a session name.
        target: String,
    },
    /// Manage a session's paths.
    #[command(subcommand)]
    Path(PathCmd),
    /// Set a session's multipath policy.
    Policy {
        /// Session name.
        session: String,
        /// rr, mi or ml (or the long names).
        #[arg(value_enum)]
        policy: PolicyArg,
    },
    /// Per-path IO statistics; --reset clears them.
    Stats {
        /// Only this session.
        session: Option<String>,
        /// Reset the counters (of every path shown).
        #[arg(long)]
        reset: bool,
    },
}

/// What `list` lists.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum What {
    /// Mapped devices.
    Devices,
    /// RTRS sessions.
    Sessions,
    /// RTRS paths of every session.
    Paths,
}

/// `map` arguments.
#[derive(Args, Debug)]
pub struct MapArgs {
    /// The device's path on the server (e.g. /dev/nullb0).
    pub device_path: String,
    /// The literal word "from".
    #[arg(value_parser = ["from"])]
    pub from: String,
    /// Session name (new or existing).
    pub session: String,
    /// Paths of a new session: [src@]dst, each an IP address (ip: optional)
    /// or a host name; then optionally ro, rw or migration.
    pub rest: Vec<String>,
    /// Server port (dest_port).
    #[arg(long)]
    pub port: Option<u16>,
    /// Poll queues (nr_poll_queues; -1: one per CPU).
    #[arg(long, allow_negative_numbers = true)]
    pub poll_queues: Option<i32>,
}

/// Path commands.
#[derive(Subcommand, Debug)]
pub enum PathCmd {
    /// Add a path to a session: `[src@]dst`.
    Add {
        /// Session name.
        session: String,
        /// [src@]dst: IP addresses (ip: optional) or host names.
        path: String,
    },
    /// Remove a path.
    Remove {
        /// Session name.
        session: String,
        /// Path name (src@dst, as listed) or its destination address.
        path: String,
    },
    /// Disconnect a path (it stays listed, without reconnecting).
    Disconnect {
        /// Session name.
        session: String,
        /// Path name or destination.
        path: String,
    },
    /// Reconnect a path now.
    Reconnect {
        /// Session name.
        session: String,
        /// Path name or destination.
        path: String,
    },
}

/// Server commands.
#[derive(Subcommand, Debug)]
pub enum ServerCmd {
    /// List the exported devices (default), sessions or paths.
    List {
        /// What to list.
        #[arg(value_enum, default_value_t = What::Devices)]
        what: What,
    },
    /// Show one exported device or session.
    Show {
        /// Device name or session name.
        target: String,
    },
    /// Close a device for one session or all (force_close).
    Close {
        /// Exported device name (as listed).
        device: String,
        /// Only this session.
        #[arg(long)]
        session: Option<String>,
    },
    /// Disconnect a session (all its paths) or one path (session/path).
    Disconnect {
        /// Session, or session/path.
        target: String,
    },
}
