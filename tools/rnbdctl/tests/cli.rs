// SPDX-License-Identifier: GPL-2.0

//! rnbdctl against fake sysfs trees laid out as the Linux 6.12 modules lay
//! them out (file names and contents from rnbd-clt-sysfs.c,
//! rtrs-clt-sysfs.c, rtrs-clt-stats.c, rnbd-srv-sysfs.c, rtrs-srv-sysfs.c).

use std::fs;
use std::path::Path;
use std::process::Command;

fn put(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}

fn get(root: &Path, rel: &str) -> String {
    fs::read_to_string(root.join(rel)).unwrap()
}

/// A client with session "mpi" over two paths and /dev/rnbd0 mapped.
fn client_tree(root: &Path) {
    put(
        root,
        "class/rnbd-client/ctl/map_device",
        "Usage: echo \"[dest_port=server port number] sessname=<name of the rtrs session> ...\n",
    );
    let d = "block/rnbd0/rnbd";
    put(root, "block/rnbd0/size", "2097152\n");
    put(root, &format!("{d}/state"), "open\n");
    put(root, &format!("{d}/session"), "mpi\n");
    put(root, &format!("{d}/mapping_path"), "/dev/nullb0\n");
    put(root, &format!("{d}/access_mode"), "rw\n");
    put(root, &format!("{d}/nr_poll_queues"), "0\n");
    put(
        root,
        &format!("{d}/unmap_device"),
        "Usage: echo <normal|force> > unmap_device\n",
    );
    put(
        root,
        &format!("{d}/remap_device"),
        "Usage: echo <1> > remap_device\n",
    );
    put(
        root,
        &format!("{d}/resize"),
        "Usage: echo <new size in sectors> > resize\n",
    );
    let s = "class/rtrs-client/mpi";
    put(root, &format!("{s}/add_path"), "Usage: echo [<source addr>@]<destination addr> > add_path\n\n*addr ::= [ ip:<ipv4|ipv6> | gid:<gid> ]\n");
    put(root, &format!("{s}/max_reconnect_attempts"), "-1\n");
    put(root, &format!("{s}/mpath_policy"), "min-inflight (MI: 1)\n");
    for (name, hca, st, rdma, lat) in [
        (
            "ip:10.99.0.1@ip:10.99.0.2",
            "rxe0",
            "connected",
            "100 409600 50 204800 0 3\n",
            "812345 ns\n",
        ),
        (
            "ip:fd99:1::1@ip:fd99:1::2",
            "rxe1",
            "disconnected",
            "7 28672 0 0 0 0\n",
            "0 ns\n",
        ),
    ] {
        let p = format!("{s}/paths/{name}");
        let (src, dst) = name.split_once('@').unwrap();
        put(root, &format!("{p}/state"), &format!("{st}\n"));
        put(root, &format!("{p}/src_addr"), &format!("{src}\n"));
        put(root, &format!("{p}/dst_addr"), &format!("{dst}\n"));
        put(root, &format!("{p}/hca_name"), &format!("{hca}\n"));
        put(root, &format!("{p}/hca_port"), "1\n");
        put(root, &format!("{p}/cur_latency"), lat);
        put(
            root,
            &format!("{p}/reconnect"),
            "Usage: echo 1 > reconnect\n",
        );
        put(
            root,
            &format!("{p}/disconnect"),
            "Usage: echo 1 > disconnect\n",
        );
        put(
            root,
            &format!("{p}/remove_path"),
            "Usage: echo 1 > remove_path\n",
        );
        put(root, &format!("{p}/stats/rdma"), rdma);
        put(root, &format!("{p}/stats/reconnects"), "2 1\n");
        put(
            root,
            &format!("{p}/stats/reset_all"),
            "echo 1 to reset all statistics\n",
        );
        put(
            root,
            &format!("{p}/stats/cpu_migration_from"),
            "   CPU0   CPU1 \n     0      0 \n",
        );
        put(
            root,
            &format!("{p}/stats/cpu_migration_to"),
            "   CPU0   CPU1 \n     0      0 \n",
        );
    }
}

/// A server exporting nullb0 to session "mpi" over one path.
fn server_tree(root: &Path) {
    let d = "class/rnbd-server/ctl/devices/nullb0";
    fs::create_dir_all(root.join(d)).unwrap();
    fs::create_dir_all(root.join("devices/virtual/block/nullb0")).unwrap();
    std::os::unix::fs::symlink(
        "../../../../../../devices/virtual/block/nullb0",
        root.join(d).join("block_dev"),
    )
    .unwrap();
    put(root, &format!("{d}/sessions/mpi/read_only"), "0\n");
    put(root, &format!("{d}/sessions/mpi/access_mode"), "rw\n");
    put(
        root,
        &format!("{d}/sessions/mpi/mapping_path"),
        "/dev/nullb0\n",
    );
    put(
        root,
        &format!("{d}/sessions/mpi/force_close"),
        "Usage: echo 1 > force_close\n",
    );
    let p = "class/rtrs-server/mpi/paths/ip:10.99.0.1@ip:10.99.0.2";
    put(
        root,
        &format!("{p}/disconnect"),
        "Usage: echo 1 > disconnect\n",
    );
    put(root, &format!("{p}/hca_name"), "rxe0\n");
    put(root, &format!("{p}/hca_port"), "1\n");
    put(root, &format!("{p}/src_addr"), "ip:10.99.0.2\n");
    put(root, &format!("{p}/dst_addr"), "ip:10.99.0.1\n");
    put(root, &format!("{p}/stats/rdma"), "100 409600 50 204800\n");
}

/// Runs rnbdctl on `root`: exit code, stdout, stderr.
fn run(root: &Path, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_rnbdctl"))
        .args(args)
        .env("RNBDCTL_SYSFS", root)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8(o.stdout).unwrap(),
        String::from_utf8(o.stderr).unwrap(),
    )
}

fn tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    client_tree(t.path());
    server_tree(t.path());
    t
}

#[test]
fn list_devices_in_three_formats() {
    let t = tree();
    let (rc, out, _) = run(t.path(), &["client", "list"]);
    assert_eq!(rc, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("DEVICE") && lines[0].contains("MAPPING_PATH"),
        "{out}"
    );
    assert!(
        lines[1].contains("rnbd0")
            && lines[1].contains("/dev/nullb0")
            && lines[1].contains("1.0 GiB"),
        "{out}"
    );
    let (rc, out, _) = run(t.path(), &["client", "list", "--csv"]);
    assert_eq!(rc, 0);
    assert_eq!(
        out,
        "device,session,mapping_path,access_mode,state,size\nrnbd0,mpi,/dev/nullb0,rw,open,1073741824\n"
    );
    let (rc, out, _) = run(t.path(), &["--json", "client", "list"]);
    assert_eq!(rc, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["devices"][0]["name"], "rnbd0");
    assert_eq!(v["devices"][0]["size_bytes"], 1073741824u64);
}

#[test]
fn sessions_and_paths() {
    let t = tree();
    let (rc, out, _) = run(t.path(), &["client", "list", "sessions", "--csv"]);
    assert_eq!(rc, 0);
    assert_eq!(
        out,
        "session,policy,paths,connected,devices,max_reconnect_attempts\nmpi,min-inflight,2,1,1,-1\n"
    );
    let (rc, out, _) = run(t.path(), &["client", "list", "paths", "--json"]);
    assert_eq!(rc, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let p = &v["paths"][0];
    assert_eq!(p["session"], "mpi");
    assert_eq!(p["name"], "ip:10.99.0.1@ip:10.99.0.2");
    assert_eq!(p["cur_latency_ns"], 812345);
    assert_eq!(p["stats"]["failovers"], 3);
    assert_eq!(p["stats"]["reconnects"], 2);
    assert_eq!(p["stats"]["reconnect_failures"], 1);
    assert_eq!(v["paths"][1]["dst_addr"], "ip:fd99:1::2");
    let (rc, out, _) = run(t.path(), &["client", "show", "mpi"]);
    assert_eq!(rc, 0);
    assert!(
        out.contains("812.3 us") && out.contains("disconnected"),
        "{out}"
    );
}

#[test]
fn json_round_trip() {
    let t = tree();
    let (_, out, _) = run(t.path(), &["--json", "client", "show", "rnbd0"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let s: Vec<serde_json::Value> = serde_json::from_value(v["sessions"].clone()).unwrap();
    let again = serde_json::to_value(&s).unwrap();
    assert_eq!(again, v["sessions"]);
    assert_eq!(v["devices"][0]["session"], "mpi");
}

#[test]
fn map_writes_upstream_syntax() {
    let t = tree();
    let (rc, _, err) = run(
        t.path(),
        &[
            "client",
            "map",
            "/dev/nullb1",
            "from",
            "new",
            "10.99.0.2",
            "10.99.1.1@ip:10.99.1.2",
            "ro",
            "--port",
            "1235",
        ],
    );
    assert_eq!(rc, 0, "{err}");
    assert_eq!(
        get(t.path(), "class/rnbd-client/ctl/map_device"),
        "dest_port=1235 sessname=new path=ip:10.99.0.2 path=ip:10.99.1.1@ip:10.99.1.2 device_path=/dev/nullb1 access_mode=ro"
    );
    // An existing session needs no path.
    let (rc, _, _) = run(t.path(), &["client", "map", "/dev/nullb2", "from", "mpi"]);
    assert_eq!(rc, 0);
    assert_eq!(
        get(t.path(), "class/rnbd-client/ctl/map_device"),
        "sessname=mpi device_path=/dev/nullb2"
    );
    // A new one does.
    let (rc, _, err) = run(t.path(), &["client", "map", "/dev/nullb2", "from", "other"]);
    assert_eq!(rc, 2);
    assert!(err.contains("does not exist: give its paths"), "{err}");
    // "from" is required.
    let (rc, _, _) = run(t.path(), &["client", "map", "/dev/nullb2", "to", "mpi"]);
    assert_eq!(rc, 2);
}

#[test]
fn device_commands() {
    let t = tree();
    let d = "block/rnbd0/rnbd";
    assert_eq!(run(t.path(), &["client", "unmap", "/dev/rnbd0"]).0, 0);
    assert_eq!(get(t.path(), &format!("{d}/unmap_device")), "normal");
    assert_eq!(
        run(t.path(), &["client", "unmap", "/dev/nullb0", "--force"]).0,
        0
    );
    assert_eq!(get(t.path(), &format!("{d}/unmap_device")), "force");
    assert_eq!(run(t.path(), &["client", "resize", "rnbd0", "2G"]).0, 0);
    assert_eq!(get(t.path(), &format!("{d}/resize")), "4194304");
    let (rc, _, err) = run(t.path(), &["client", "resize", "rnbd0", "100"]);
    assert_eq!(rc, 2);
    assert!(err.contains("multiple of 512"), "{err}");
    assert_eq!(run(t.path(), &["client", "remap", "mpi"]).0, 0);
    assert_eq!(get(t.path(), &format!("{d}/remap_device")), "1");
    let (rc, _, err) = run(t.path(), &["client", "unmap", "rnbd7"]);
    assert_eq!(rc, 3);
    assert!(err.contains("no mapped device 'rnbd7'"), "{err}");
}

#[test]
fn path_and_policy_commands() {
    let t = tree();
    let s = "class/rtrs-client/mpi";
    assert_eq!(
        run(t.path(), &["client", "path", "add", "mpi", "fd99::2"]).0,
        0
    );
    assert_eq!(get(t.path(), &format!("{s}/add_path")), "ip:fd99::2");
    assert_eq!(
        run(
            t.path(),
            &["client", "path", "disconnect", "mpi", "10.99.0.2"]
        )
        .0,
        0
    );
    assert_eq!(
        get(
            t.path(),
            &format!("{s}/paths/ip:10.99.0.1@ip:10.99.0.2/disconnect")
        ),
        "1"
    );
    assert_eq!(
        run(
            t.path(),
            &[
                "client",
                "path",
                "reconnect",
                "mpi",
                "ip:fd99:1::1@ip:fd99:1::2"
            ]
        )
        .0,
        0
    );
    assert_eq!(
        get(
            t.path(),
            &format!("{s}/paths/ip:fd99:1::1@ip:fd99:1::2/reconnect")
        ),
        "1"
    );
    assert_eq!(
        run(
            t.path(),
            &["client", "path", "remove", "mpi", "ip:fd99:1::2"]
        )
        .0,
        0
    );
    assert_eq!(
        get(
            t.path(),
            &format!("{s}/paths/ip:fd99:1::1@ip:fd99:1::2/remove_path")
        ),
        "1"
    );
    let (rc, _, err) = run(t.path(), &["client", "path", "remove", "mpi", "10.0.0.9"]);
    assert_eq!(rc, 3);
    assert!(err.contains("has no path '10.0.0.9'"), "{err}");
    assert_eq!(run(t.path(), &["client", "policy", "mpi", "ml"]).0, 0);
    assert_eq!(get(t.path(), &format!("{s}/mpath_policy")), "min-latency");
    assert_eq!(
        run(t.path(), &["client", "policy", "mpi", "round-robin"]).0,
        0
    );
    assert_eq!(get(t.path(), &format!("{s}/mpath_policy")), "round-robin");
    assert_eq!(run(t.path(), &["client", "policy", "mpi", "fastest"]).0, 2);
    assert_eq!(run(t.path(), &["client", "stats", "--reset"]).0, 0);
    assert_eq!(
        get(
            t.path(),
            &format!("{s}/paths/ip:10.99.0.1@ip:10.99.0.2/stats/reset_all")
        ),
        "1"
    );
    let (rc, out, _) = run(t.path(), &["client", "stats", "mpi", "--csv"]);
    assert_eq!(rc, 0);
    assert!(out.starts_with("session,path,state,hca,latency,reads,read,writes,written,inflight,failovers,reconnects\n"), "{out}");
    assert!(
        out.contains(
            "mpi,ip:10.99.0.1@ip:10.99.0.2,connected,rxe0:1,812345,100,409600,50,204800,0,3,2/1\n"
        ),
        "{out}"
    );
}

#[test]
fn server_commands() {
    let t = tree();
    let (rc, out, _) = run(t.path(), &["server", "list", "--csv"]);
    assert_eq!(rc, 0);
    assert_eq!(out, "device,block_dev,session,access_mode,read_only,mapping_path\nnullb0,nullb0,mpi,rw,false,/dev/nullb0\n");
    let (rc, out, _) = run(t.path(), &["server", "list", "paths", "--json"]);
    assert_eq!(rc, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["sessions"][0]["paths"][0]["stats"]["writes"], 50);
    assert!(v["sessions"][0]["paths"][0]["stats"]["inflight"].is_null());
    assert_eq!(
        run(t.path(), &["server", "close", "nullb0", "--session", "mpi"]).0,
        0
    );
    assert_eq!(
        get(
            t.path(),
            "class/rnbd-server/ctl/devices/nullb0/sessions/mpi/force_close"
        ),
        "1"
    );
    assert_eq!(
        run(t.path(), &["server", "close", "nullb0", "--session", "zzz"]).0,
        3
    );
    assert_eq!(
        run(
            t.path(),
            &["server", "disconnect", "mpi/ip:10.99.0.1@ip:10.99.0.2"]
        )
        .0,
        0
    );
    assert_eq!(
        get(
            t.path(),
            "class/rtrs-server/mpi/paths/ip:10.99.0.1@ip:10.99.0.2/disconnect"
        ),
        "1"
    );
    assert_eq!(run(t.path(), &["server", "disconnect", "nosuch"]).0, 3);
    let (rc, out, _) = run(t.path(), &["server", "show", "mpi"]);
    assert_eq!(rc, 0);
    assert!(
        out.contains("nullb0") && out.contains("ip:10.99.0.1@ip:10.99.0.2"),
        "{out}"
    );
}

#[test]
fn errors() {
    // Modules not loaded.
    let t = tempfile::tempdir().unwrap();
    let (rc, _, err) = run(t.path(), &["client", "list"]);
    assert_eq!(rc, 4);
    assert!(err.contains("module rnbd_client is not loaded"), "{err}");
    assert_eq!(run(t.path(), &["server", "list"]).0, 4);
    // Unexpected content names the file.
    let t = tree();
    put(
        t.path(),
        "class/rtrs-client/mpi/paths/ip:10.99.0.1@ip:10.99.0.2/cur_latency",
        "soon\n",
    );
    let (rc, _, err) = run(t.path(), &["client", "list", "paths"]);
    assert_eq!(rc, 5);
    assert!(
        err.contains("cur_latency") && err.contains("'soon'"),
        "{err}"
    );
    // A write the kernel side refuses: here a file that went away.
    let t = tree();
    fs::remove_file(t.path().join("block/rnbd0/rnbd/resize")).unwrap();
    let (rc, _, err) = run(t.path(), &["client", "resize", "rnbd0", "1G"]);
    assert_eq!(rc, 1);
    assert!(
        err.contains("writing '2097152' to")
            && err.contains("resize: No such file or directory (ENOENT)"),
        "{err}"
    );
}
