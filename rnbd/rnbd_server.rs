// SPDX-License-Identifier: GPL-2.0

//! RNBD server: serves block devices to RNBD clients over RTRS, wire
//! compatible with upstream 6.12 `rnbd-server.ko`.
//!
//! # Objects and lifetimes
//!
//! - `RnbdServer` (the module) owns the RTRS [`Server`] and the registry of
//!   opened devices ([`Devs`]).
//! - `SrvSess`: one RTRS session; created when its first path is up and
//!   released when RTRS reports the session gone.  Holds the session's
//!   devices by device id (the id the client uses in every IO).
//! - `SessDev`: a device opened for one session; bios in flight hold it, so
//!   the block device is put when the last of them completed.
//! - `SrvDev`: a block device opened by one or more sessions, for the
//!   read-write exclusivity check (one `rw`, two with `migration`).
//!
//! Every callback here runs in process context: RTRS requests come from its
//! workqueue-polled CQs, bio completions from the `blk` crate's work items.

use blk::BioPool;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use kernel::prelude::*;
use kernel::str::CStr;
use kernel::sync::{new_mutex, Arc, Mutex};
use proto::rnbd::{self as wire, AccessMode, MsgIo, MsgType, OpFlags, OpenRsp};
use proto::wire::{Le16, Le32, Le64};
use rtrs_core::Slots;
use rtrs_server::{Io, Server, Sess, SessOps};
use support::sync::{Counted, Drained};
use support::sysfs::{Attr, Attrs, Class, Dir, Emit, KobjRef, Link, PlainDir};
use support::wq::OwnedQueue;
use support::{peer_err, peer_info, peer_warn};

module! {
    type: RnbdServer,
    name: "rnbd_server",
    author: "rnbd-rs developers",
    description: "RDMA Network Block Device Server (rnbd-rs)",
    license: "GPL",
}

/// `struct rnbd_srv_params` of params_server.c (private to the C shim, so no
/// bindgen type: its size is asserted on both sides).
#[repr(C)]
struct RawParams {
    port_nr: u16,
    dev_search_path: [u8; wire::PATH_MAX],
}

// Kept equal to the `static_assert` in params_server.c.
const _: () = assert!(core::mem::size_of::<RawParams>() == 4098);

// The module's C shim: fills the struct from the module parameters (a
// reference is a valid, writable pointer to the whole struct, hence `safe`).
unsafe extern "C" {
    safe fn rnbd_srv_params_get(out: &mut RawParams);
}

/// `IOPRIO_CLASS_SHIFT`.
const IOPRIO_CLASS_SHIFT: u16 = 13;
/// `IOPRIO_CLASS_IDLE`, the highest class.
const IOPRIO_CLASS_IDLE: u16 = 3;

/// A name of at most `NAME_MAX` bytes.
#[derive(Clone, Copy)]
struct Name {
    b: [u8; wire::NAME_MAX + 1],
    n: usize,
}

impl Name {
    fn new(s: &[u8]) -> Self {
        let mut b = [0u8; wire::NAME_MAX + 1];
        let n = s.len().min(wire::NAME_MAX);
        b[..n].copy_from_slice(&s[..n]);
        Self { b, n }
    }

    fn get(&self) -> &[u8] {
        &self.b[..self.n]
    }

    fn show(&self) -> &str {
        core::str::from_utf8(self.get()).unwrap_or("?")
    }
}

/// `ctl/devices/<dev>/` of a device: the `block_dev` link and `sessions/`.
/// Fields drop in order: the link and `sessions` before their directory.
struct DevSysfs {
    _link: Link,
    sessions: PlainDir,
    _dir: PlainDir,
}

impl DevSysfs {
    fn new(parent: KobjRef<'_>, name: &[u8], bdev: &blk::Bdev) -> Result<Self> {
        let mut b = [0u8; 65];
        let n = name.len().min(64);
        b[..n].copy_from_slice(&name[..n]);
        let cname = CStr::from_bytes_with_nul(&b[..=n]).map_err(|_| EINVAL)?;
        let dir = PlainDir::new(parent, cname)?;
        let sessions = PlainDir::new(dir.kobj(), kernel::c_str!("sessions"))?;
        let link = Link::new(
            dir.kobj(),
            bdev.disk_kobj().ok_or(ENODEV)?,
            kernel::c_str!("block_dev"),
        )?;
        Ok(Self {
            _link: link,
            sessions,
            _dir: dir,
        })
    }
}

/// A block device opened by one or more sessions.
#[pin_data]
struct SrvDev {
    /// Removed with the registry entry, under the registry's lock, so that
    /// a new entry for the same name never meets the old directory.
    #[pin]
    sysfs: Mutex<Option<DevSysfs>>,
    name: Name,
    /// Read-write openers (`rw` and `migration`).
    open_write_cnt: AtomicU32,
    /// Sessions that opened it; changed under the registry's lock.
    users: AtomicU32,
}

impl SrvDev {
    /// Takes a write slot for `mode`: none for `ro`, the only one for `rw`,
    /// one of two for `migration` (upstream's rule).
    fn get_write(&self, mode: AccessMode, sess: &Name) -> Result {
        let max = match mode {
            AccessMode::Ro => return Ok(()),
            AccessMode::Rw => 1,
            AccessMode::Migration => 2,
        };
        self.open_write_cnt
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| (c < max).then_some(c + 1))
            .map(|_| ())
            .map_err(|c| {
                pr_err!(
                    "Mapping device '{}' for session {} with {} permissions failed. Device already opened as 'RW' by {} client(s), access mode {}.\n",
                    self.name.show(),
                    sess.show(),
                    if mode == AccessMode::Rw { "RW" } else { "migration" },
                    c,
                    mode.as_str()
                );
                EPERM
            })
    }
}

/// The opened devices, by name.
type Devs = Mutex<Slots<Arc<SrvDev>>>;

/// A device opened by one session.
#[pin_data(PinnedDrop)]
struct SessDev {
    /// `ctl/devices/<dev>/sessions/<sess>/`; removed first in `drop`.
    #[pin]
    sysfs: Mutex<Option<Dir>>,
    /// Tells this device from a later one with the same id.
    token: u64,
    bdev: Arc<blk::Bdev>,
    dev: Arc<SrvDev>,
    devs: Arc<Module>,
    mode: AccessMode,
    /// The name the client asked for (upstream `pathname`).
    pathname: Name,
    /// Logical block size of the device at open: requests must be aligned
    /// to it.
    lbs: u32,
    /// Bios in flight.  A bio's completion holds a [`Counted`] of it, not
    /// the device: it may run in an atomic context, where dropping the
    /// device's last reference (sysfs removal) must not happen.
    inflight: Arc<Drained>,
}

impl SessDev {
    /// Waits until no bio of this device is in flight (upstream waits the
    /// same way before it answers a close), for at most [`CLOSE_WAIT_MS`]:
    /// this runs in the session's completion work, and a backend that
    /// never completes must not stall the session's other connections'
    /// work forever.  The device stays alive for the bios still out (they
    /// hold it).
    fn wait_idle(&self) {
        if !self.inflight.wait_idle(Some(CLOSE_WAIT_MS)) {
            peer_warn!(
                "{}: closing with {} requests still in flight after {} ms\n",
                self.pathname.show(),
                self.inflight.count(),
                CLOSE_WAIT_MS
            );
        }
    }
}

/// Longest wait of a close for the device's requests in flight: well
/// below the client's 30 s limit for a control message, which closes the
/// whole session when it expires.
const CLOSE_WAIT_MS: u32 = 15_000;

#[pinned_drop]
impl PinnedDrop for SessDev {
    fn drop(self: Pin<&mut Self>) {
        let dir = self.sysfs.lock().take();
        drop(dir);
        if self.mode != AccessMode::Ro {
            self.dev.open_write_cnt.fetch_sub(1, Ordering::AcqRel);
        }
        self.devs.put_dev(&self.dev);
    }
}

/// Module-wide state shared with the sessions.
///
/// Lock order: a session's `devs`, then `devs` here.
#[pin_data]
struct Module {
    /// `/sys/class/rnbd-server/ctl/devices`, before the class it is in.
    devices: PlainDir,
    class: Class,
    search_path: KVec<u8>,
    /// Source of `SessDev::token`.
    tokens: AtomicU64,
    /// Runs `force_close` requests; flushed at unload.
    wq: Arc<OwnedQueue>,
    /// The bios of every device.  Its drop, when the last session has
    /// gone, waits for their completions.
    bios: BioPool,
    #[pin]
    devs: Devs,
}

impl Module {
    /// The registered device `name`, or a new one; counts the caller as a
    /// user until [`Module::put_dev`].
    fn get_dev(&self, name: &[u8], bdev: &blk::Bdev) -> Result<Arc<SrvDev>> {
        let mut g = self.devs.lock();
        if let Some(d) = g.iter().find(|d| d.name.get() == name) {
            d.users.fetch_add(1, Ordering::Relaxed);
            return Ok(d.clone());
        }
        let sysfs = DevSysfs::new(self.devices.kobj(), name, bdev)?;
        let d = Arc::pin_init(
            pin_init!(SrvDev {
                sysfs <- new_mutex!(Some(sysfs)),
                name: Name::new(name),
                open_write_cnt: AtomicU32::new(0),
                users: AtomicU32::new(1),
            }),
            GFP_KERNEL,
        )?;
        g.insert(d.clone())?;
        Ok(d)
    }

    /// Drops a user of `dev`; the registry forgets it with the last one.
    fn put_dev(&self, dev: &Arc<SrvDev>) {
        let mut g = self.devs.lock();
        if dev.users.fetch_sub(1, Ordering::Relaxed) == 1 {
            g.take_where(|d| Arc::ptr_eq(d, dev), drop);
            let s = dev.sysfs.lock().take();
            drop(s);
        }
    }
}

/// Gives back a device's write slot and user count if an open fails after
/// taking them.
struct OpenUndo<'a> {
    m: &'a Module,
    dev: Arc<SrvDev>,
    mode: AccessMode,
    armed: bool,
}

impl Drop for OpenUndo<'_> {
    fn drop(&mut self) {
        if self.armed {
            if self.mode != AccessMode::Ro {
                self.dev.open_write_cnt.fetch_sub(1, Ordering::AcqRel);
            }
            self.m.put_dev(&self.dev);
        }
    }
}

/// One RTRS session.
#[pin_data]
struct SrvSess {
    m: Arc<Module>,
    rtrs: Arc<Sess>,
    name: Name,
    /// Protocol major version agreed in SESS_INFO.
    ver: AtomicU8,
    /// Devices by device id.
    devs: Arc<DevTable>,
}

/// A session's devices by id.  A slot holding `None` is an id that was
/// force-closed on the server while the client may still use it: it is not
/// given to another device until the client closes it (upstream `keep_id`).
#[pin_data]
struct DevTable {
    #[pin]
    devs: Mutex<Slots<Option<Arc<SessDev>>>>,
}

impl DevTable {
    /// `force_close`: the device goes, its id stays reserved.  `token`
    /// makes sure it is still the device the request was for.
    fn force_close(&self, id: usize, token: u64) {
        let sd = self.devs.lock().get_mut(id).and_then(|s| {
            if s.as_ref().is_some_and(|d| d.token == token) {
                s.take()
            } else {
                None
            }
        });
        if let Some(sd) = sd {
            sd.wait_idle();
            pr_info!("{}: force closed\n", sd.pathname.show());
        }
    }
}

/// Attributes of `sessions/<sess>/`.
struct SessDevAttrs {
    mode: AccessMode,
    pathname: Name,
    table: Arc<DevTable>,
    wq: Arc<OwnedQueue>,
    id: usize,
    token: u64,
}

static SESS_DEV_ATTRS: [Attr; 4] = [
    Attr::ro(kernel::c_str!("read_only")),
    Attr::ro(kernel::c_str!("access_mode")),
    Attr::ro(kernel::c_str!("mapping_path")),
    Attr::rw(kernel::c_str!("force_close")),
];

impl Attrs for SessDevAttrs {
    fn show(&self, idx: usize, out: &mut Emit<'_>) -> Result {
        use core::fmt::Write;
        let r = match idx {
            0 => writeln!(out, "{}", (self.mode == AccessMode::Ro) as u8),
            1 => writeln!(out, "{}", self.mode.as_str()),
            2 => {
                out.bytes(self.pathname.get());
                writeln!(out)
            }
            3 => writeln!(out, "Usage: echo 1 > force_close"),
            _ => return Err(EINVAL),
        };
        r.map_err(|_| EINVAL)
    }

    fn store(&self, idx: usize, input: &[u8]) -> Result {
        if idx != 3 {
            return Err(EACCES);
        }
        let v = input.strip_suffix(b"\n").unwrap_or(input);
        if v != b"1" {
            pr_err!("{}: force_close: invalid value\n", self.pathname.show());
            return Err(EINVAL);
        }
        pr_info!("{}: force close requested\n", self.pathname.show());
        // Not from here: closing removes this very file.
        let (t, id, token) = (self.table.clone(), self.id, self.token);
        self.wq
            .queue()
            .try_spawn(GFP_KERNEL, move || t.force_close(id, token))
            .map_err(|_| ENOMEM)
    }
}

impl SrvSess {
    fn dev(&self, id: u32) -> Option<Arc<SessDev>> {
        self.devs.devs.lock().get(id as usize).cloned().flatten()
    }

    fn sess_info(&self, io: &Io) -> Result {
        let m = wire::SessInfo::from_bytes(io.usr()).map_err(|_| EINVAL)?;
        let ver = m.ver.min(wire::VERSION_MAJOR);
        self.ver.store(ver, Ordering::Relaxed);
        let mut rsp = wire::SessInfo::new(true);
        rsp.ver = ver;
        io.write_data(0, &rsp.to_bytes())
    }

    fn open(&self, io: &Io) -> Result {
        let (mode, dev_name) = wire::Open::parse(io.usr()).map_err(|e| {
            peer_err!(
                "Invalid open request on session {}: {:?}\n",
                self.name.show(),
                e
            );
            EINVAL
        })?;
        if io.data_len() < OpenRsp::SIZE {
            return Err(EINVAL);
        }
        let mut devs = self.devs.devs.lock();
        let found = devs
            .iter_indexed()
            .filter_map(|(i, d)| d.as_ref().map(|d| (i, d)))
            .find(|(_, d)| d.pathname.get() == dev_name)
            .map(|(i, d)| (i, d.clone()));
        let (id, sd) = match found {
            Some(x) => x,
            None => {
                let mut path = KVec::from_elem(0u8, wire::PATH_MAX, GFP_KERNEL)?;
                let Some(n) =
                    wire::full_path(&self.m.search_path, self.name.get(), dev_name, &mut path)
                else {
                    peer_err!(
                        "Opening device for session {} failed, invalid device path '{}'\n",
                        self.name.show(),
                        core::str::from_utf8(dev_name).unwrap_or("?")
                    );
                    return Err(EINVAL);
                };
                let cpath = CStr::from_bytes_with_nul(&path[..=n]).map_err(|_| EINVAL)?;
                let bdev = blk::Bdev::open(cpath, mode != AccessMode::Ro).inspect_err(|e| {
                    peer_err!(
                        "Opening device '{}' on session {} failed, failed to open the block device, err: {:?}\n",
                        core::str::from_utf8(&path[..n]).unwrap_or("?"),
                        self.name.show(),
                        e
                    )
                })?;
                let lbs = bdev.limits().logical_block_size as u32;
                let mut nb = [0u8; 64];
                let nl = bdev.name(&mut nb);
                let dev = self.m.get_dev(&nb[..nl], &bdev)?;
                if let Err(e) = dev.get_write(mode, &self.name) {
                    self.m.put_dev(&dev);
                    return Err(e);
                }
                // Undoes the two counts above if anything below fails.
                let mut undo = OpenUndo {
                    m: &self.m,
                    dev: dev.clone(),
                    mode,
                    armed: true,
                };
                let bdev = Arc::new(bdev, GFP_KERNEL)?;
                let token = self.m.tokens.fetch_add(1, Ordering::Relaxed);
                // The id is the slot the insert below takes (lock held).
                let id = devs.next_free();
                let attrs = Arc::new(
                    SessDevAttrs {
                        mode,
                        pathname: Name::new(dev_name),
                        table: self.devs.clone(),
                        wq: self.m.wq.clone(),
                        id,
                        token,
                    },
                    GFP_KERNEL,
                )?;
                let mut sb = [0u8; wire::NAME_MAX + 1];
                sb[..self.name.n].copy_from_slice(self.name.get());
                let sname = CStr::from_bytes_with_nul(&sb[..=self.name.n]).map_err(|_| EINVAL)?;
                let sysfs = {
                    let g = dev.sysfs.lock();
                    let parent = g.as_ref().ok_or(ENODEV)?.sessions.kobj();
                    Dir::new(parent, sname, &SESS_DEV_ATTRS, attrs)?
                };
                let inflight = Drained::new()?;
                let sd = Arc::pin_init(
                    pin_init!(SessDev {
                        sysfs <- new_mutex!(Some(sysfs)),
                        token,
                        bdev,
                        dev,
                        devs: self.m.clone(),
                        mode,
                        pathname: Name::new(dev_name),
                        lbs,
                        inflight,
                    }),
                    GFP_KERNEL,
                )?;
                // The device owns the counts now (its drop gives them back).
                undo.armed = false;
                let got = devs.insert(Some(sd.clone()))?;
                debug_assert_eq!(got, id);
                peer_info!(
                    "{} {}: Opened device '{}'\n",
                    self.name.show(),
                    sd.pathname.show(),
                    sd.dev.name.show()
                );
                (id, sd)
            }
        };
        drop(devs);
        let l = sd.bdev.limits();
        let mut rsp = OpenRsp::zeroed();
        rsp.hdr = wire::MsgHdr::new(MsgType::OpenRsp);
        rsp.device_id = Le32::new(id as u32);
        rsp.nsectors = Le64::new(l.nr_sectors);
        rsp.logical_block_size = Le16::new(l.logical_block_size);
        rsp.physical_block_size = Le16::new(l.physical_block_size);
        rsp.max_segments = Le16::new(l.max_segments);
        rsp.max_hw_sectors = Le32::new(l.max_hw_sectors);
        rsp.max_write_zeroes_sectors = Le32::new(l.max_write_zeroes_sectors);
        rsp.max_discard_sectors = Le32::new(l.max_discard_sectors);
        rsp.discard_granularity = Le32::new(l.discard_granularity);
        rsp.discard_alignment = Le32::new(l.discard_alignment);
        rsp.secure_discard = Le16::new(l.max_secure_erase_sectors.min(u16::MAX as u32) as u16);
        rsp.cache_policy = if l.write_cache {
            wire::CACHE_WRITEBACK
        } else {
            0
        } | if l.fua { wire::CACHE_FUA } else { 0 };
        io.write_data(0, &rsp.to_bytes())
    }

    fn close(&self, io: &Io) {
        let Ok(m) = wire::Close::from_bytes(io.usr()) else {
            return;
        };
        let sd = self
            .devs
            .devs
            .lock()
            .remove(m.device_id.get() as usize)
            .flatten();
        if let Some(sd) = sd {
            sd.wait_idle();
            peer_info!(
                "{} {}: Device closed\n",
                self.name.show(),
                sd.pathname.show()
            );
        }
    }

    /// Checks an IO request and submits its bio; the answer goes out when
    /// the bio completes.
    fn io(&self, io: Io) {
        let r = (|| -> Result<(Arc<SessDev>, blk::Request)> {
            let m = MsgIo::from_bytes(io.usr()).map_err(|_| EINVAL)?;
            let f = OpFlags::try_from(m.rw.get()).map_err(|e| {
                peer_err!(
                    "Invalid IO operation on session {}: {:?}\n",
                    self.name.show(),
                    e
                );
                EINVAL
            })?;
            let id = m.device_id.get();
            let sd = self.dev(id).ok_or_else(|| {
                peer_err!(
                    "Got I/O request on session {} for unknown device id {}\n",
                    self.name.show(),
                    id
                );
                support::code::enotconn()
            })?;
            let op = f.op;
            if op.modifies() && sd.mode == AccessMode::Ro {
                return Err(EPERM);
            }
            let bi_size = m.bi_size.get();
            // Only what a block device could have sent: FUA on writes only,
            // sizes matching the data, aligned to the logical block size.
            if let Err(e) =
                proto::rnbd_io::check_io(f, m.sector.get(), bi_size, io.data_len(), sd.lbs)
            {
                peer_err!(
                    "Invalid IO request on session {}: {:?} (op {:?}, sector {}, bi_size {}, data {})\n",
                    self.name.show(),
                    e,
                    f.op,
                    m.sector.get(),
                    bi_size,
                    io.data_len()
                );
                return Err(EINVAL);
            }
            // Priority classes beyond IDLE (3) index past the block layer's
            // class tables: treat them as "none" instead of trusting them.
            let prio = match m.prio.get() {
                _ if self.ver.load(Ordering::Relaxed) < wire::VERSION_MAJOR => 0,
                p if p >> IOPRIO_CLASS_SHIFT > IOPRIO_CLASS_IDLE => 0,
                p => p,
            };
            Ok((
                sd,
                blk::Request {
                    op,
                    sync: f.sync,
                    fua: f.fua,
                    sector: m.sector.get(),
                    bi_size,
                    prio,
                },
            ))
        })();
        let (sd, req) = match r {
            Ok(x) => x,
            Err(e) => return io.respond(e.to_errno()),
        };
        let data = io.data().cloned();
        let len = io.data_len();
        let bdev = sd.bdev.clone();
        let data = if req.op.has_data() {
            data.as_ref().map(|b| (b, len))
        } else {
            None
        };
        let counted = Counted::new(&sd.inflight);
        // On a submission error the closure (and `io` and `counted` in it)
        // is dropped, which answers -EIO and uncounts.  The closure may run
        // in the bio's completion context (see `blk::submit`): answering
        // and uncounting do not sleep.
        let _ = blk::submit(&self.m.bios, &bdev, req, data, move |status| {
            io.respond(status);
            drop(counted);
        });
    }
}

impl SessOps for SrvSess {
    fn rdma_ev(&self, io: Io) {
        let ty = match wire::msg_type(io.usr()) {
            Ok(t) => t,
            Err(e) => {
                peer_warn!(
                    "Received unexpected message from session {}: {:?}\n",
                    self.name.show(),
                    e
                );
                return io.respond(EINVAL.to_errno());
            }
        };
        match ty {
            MsgType::Io => self.io(io),
            MsgType::Close => {
                self.close(&io);
                io.respond(0);
            }
            MsgType::Open => {
                let r = self.open(&io);
                io.respond(r.err().map_or(0, |e| e.to_errno()));
            }
            MsgType::SessInfo => {
                let r = self.sess_info(&io);
                io.respond(r.err().map_or(0, |e| e.to_errno()));
            }
            t => {
                peer_warn!(
                    "Received unexpected message type {:?} from session {}\n",
                    t,
                    self.name.show()
                );
                io.respond(EINVAL.to_errno());
            }
        }
    }

    fn disconnected(&self) {
        let mut devs = KVec::new();
        self.devs.devs.lock().take_where(
            |_| true,
            |d| {
                let _ = devs.push(d, GFP_KERNEL);
            },
        );
        drop(devs);
        peer_info!("RTRS Session {} disconnected\n", self.name.show());
    }
}

/// Hands new sessions to [`SrvSess`].
struct Ops {
    m: Arc<Module>,
}

impl rtrs_server::Ops for Ops {
    fn connected(&self, sess: &Arc<Sess>, name: &[u8]) -> Result<Arc<dyn SessOps>> {
        let devs = Arc::pin_init(
            pin_init!(DevTable { devs <- new_mutex!(Slots::new()) }),
            GFP_KERNEL,
        )?;
        let s = Arc::pin_init(
            pin_init!(SrvSess {
                m: self.m.clone(),
                rtrs: sess.clone(),
                name: Name::new(name),
                ver: AtomicU8::new(wire::VERSION_MAJOR),
                devs,
            }),
            GFP_KERNEL,
        )?;
        Ok(s)
    }
}

struct RnbdServer {
    server: Option<Server>,
    wq: Arc<OwnedQueue>,
}

impl Drop for RnbdServer {
    fn drop(&mut self) {
        // Sessions first: the server's drop returns once every path has
        // gone, i.e. every request was answered (or dropped), and then
        // drops the module's state, whose bio pool waits for completions
        // still returning.  Then the force_close requests.
        drop(self.server.take());
        self.wq.flush();
    }
}

impl kernel::Module for RnbdServer {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let mut p = KBox::new(
            RawParams {
                port_nr: 0,
                dev_search_path: [0; wire::PATH_MAX],
            },
            GFP_KERNEL,
        )?;
        rnbd_srv_params_get(&mut p);
        let n = p.dev_search_path.iter().position(|&c| c == 0).unwrap_or(0);
        let mut search_path = KVec::new();
        search_path.extend_from_slice(&p.dev_search_path[..n], GFP_KERNEL)?;
        let wq = OwnedQueue::new(kernel::c_str!("rnbd_server_wq"))?;
        let mwq = wq.clone();
        let bios = BioPool::new(kernel::c_str!("rnbd_server_bios"))?;
        let class = Class::new(kernel::c_str!("rnbd-server"), kernel::c_str!("ctl"))?;
        let devices = PlainDir::new(class.ctl(), kernel::c_str!("devices"))?;
        let m = Arc::pin_init(
            pin_init!(Module {
                devices,
                class,
                search_path,
                tokens: AtomicU64::new(0),
                wq: mwq,
                bios,
                devs <- new_mutex!(Slots::new()),
            }),
            GFP_KERNEL,
        )?;
        let server =
            Server::open(Arc::new(Ops { m }, GFP_KERNEL)?, p.port_nr).inspect_err(|e| {
                pr_err!("rtrs_srv_open(), err: {:?}\n", e);
            })?;
        pr_info!(
            "Loaded, RNBD protocol {}.{}, port {}, dev_search_path '{}'\n",
            wire::VERSION_MAJOR,
            wire::VERSION_MINOR,
            p.port_nr,
            core::str::from_utf8(&p.dev_search_path[..n]).unwrap_or("?")
        );
        Ok(Self {
            server: Some(server),
            wq,
        })
    }
}
