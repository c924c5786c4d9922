// SPDX-License-Identifier: GPL-2.0
//! rnbd-hostile: a hostile RTRS/RNBD peer for testing the kernel modules.
//!
//!   rnbd-hostile client --dst IP [--port 1234] [--dev /dev/nullb0] [--kind NAME]...
//!       runs the hostile-client kinds (all by default) against a server;
//!       prints one line per kind: "ok <kind> <detail>" or "not ok <kind> <detail>"
//!   rnbd-hostile server --listen IP --port P --kind NAME [--ready FILE] [--timeout S]
//!       serves one client, getting one thing wrong
//!   rnbd-hostile list client|server
//!
//! Environment: HOSTILE_FLOOD_LIMIT (sessions tried by connreq-session-flood,
//! default 64), HOSTILE_PATHS_LIMIT (paths the server allows, default 128),
//! HOSTILE_SETUP_TIMEOUT_MS (how long connreq-unknown-flags waits for the
//! server to drop a path that never completes, default 40000).

mod client;
mod ffi;
mod server;
mod sess;

use std::time::Duration;

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub fn flood_limit() -> u32 {
    env_u32("HOSTILE_FLOOD_LIMIT", 64)
}

pub fn paths_limit() -> u32 {
    env_u32("HOSTILE_PATHS_LIMIT", 128)
}

pub fn setup_timeout_ms() -> i32 {
    env_u32("HOSTILE_SETUP_TIMEOUT_MS", 40000) as i32
}

fn usage() -> ! {
    eprintln!("usage: rnbd-hostile client --dst IP [--port P] [--dev PATH] [--kind K]...");
    eprintln!("       rnbd-hostile server --listen IP --port P --kind K [--ready FILE] [--timeout S]");
    eprintln!("       rnbd-hostile list client|server");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(mode) = args.first() else { usage() };
    if mode == "list" {
        match args.get(1).map(String::as_str) {
            Some("client") => client::KINDS.iter().for_each(|k| println!("{}", k.name)),
            Some("server") => server::KINDS.iter().for_each(|k| println!("{}", k.name)),
            _ => usage(),
        }
        return;
    }
    let mut opt = std::collections::HashMap::new();
    let mut kinds = Vec::new();
    let mut i = 1;
    while i < args.len() {
        let k = args[i].trim_start_matches("--").to_string();
        let v = args.get(i + 1).cloned().unwrap_or_else(|| usage());
        if k == "kind" {
            kinds.push(v);
        } else {
            opt.insert(k, v);
        }
        i += 2;
    }
    match mode.as_str() {
        "client" => {
            let t = sess::Target {
                dst: opt.get("dst").cloned().unwrap_or_else(|| usage()),
                port: opt.get("port").and_then(|p| p.parse().ok()).unwrap_or(1234),
                dev: opt.get("dev").cloned().unwrap_or_else(|| "/dev/nullb0".into()),
            };
            let mut failed = 0;
            let mut n = 0;
            for k in client::KINDS.iter().filter(|k| kinds.is_empty() || kinds.iter().any(|x| x == k.name)) {
                n += 1;
                let t0 = std::time::Instant::now();
                match client::run(k, &t) {
                    Ok(d) => println!("ok {} {} [{:.1}s]", k.name, d, t0.elapsed().as_secs_f32()),
                    Err(d) => {
                        failed += 1;
                        println!("not ok {} {} [{:.1}s]", k.name, d, t0.elapsed().as_secs_f32());
                    }
                }
            }
            if n == 0 {
                eprintln!("no such kind: {:?}", kinds);
                std::process::exit(2);
            }
            std::process::exit(if failed == 0 { 0 } else { 1 });
        }
        "server" => {
            let name = kinds.first().cloned().unwrap_or_else(|| usage());
            let Some(k) = server::KINDS.iter().find(|k| k.name == name) else {
                eprintln!("no such kind: {}", name);
                std::process::exit(2)
            };
            let ip = opt.get("listen").cloned().unwrap_or_else(|| usage());
            let port = opt.get("port").and_then(|p| p.parse().ok()).unwrap_or_else(|| usage());
            let secs = opt.get("timeout").and_then(|p| p.parse().ok()).unwrap_or(60);
            eprintln!("# {}: {}", k.name, k.what);
            match server::serve(k.name, &ip, port, opt.get("ready").map(String::as_str), Duration::from_secs(secs)) {
                Ok(d) => println!("served {}: {}", k.name, d),
                Err(e) => {
                    println!("error {}: {}", k.name, e);
                    std::process::exit(1)
                }
            }
        }
        _ => usage(),
    }
}
