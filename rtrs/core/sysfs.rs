// SPDX-License-Identifier: GPL-2.0

//! The parts of the rtrs-client and rtrs-server sysfs trees both sides
//! build alike: the class, a session's device with its `paths/`, and a
//! path's directory with its `stats/`.

use kernel::prelude::*;
use kernel::str::CStr;
use kernel::sync::Arc;
use support::rcu::RcuBox;
use support::sysfs::{Attr, AttrClass, Attrs, ClassDev, DevClass, Dir, KobjRef, PlainDir};

/// A module's device class, registered at load and unregistered at unload;
/// a session's device holds a reference while it exists.  For a `static`.
pub struct ClassCell(RcuBox<Arc<DevClass>>);

impl ClassCell {
    /// No class yet.
    pub const fn new() -> Self {
        Self(RcuBox::empty())
    }

    /// Registers class `name` (module load).
    pub fn register(&self, name: &'static CStr) -> Result {
        let c = Arc::new(DevClass::new(name)?, GFP_KERNEL)?;
        self.0.publish(KBox::new(c, GFP_KERNEL)?).map_err(|_| EBUSY)
    }

    /// Unregisters it (module unload, once no session is left).
    pub fn unregister(&self) {
        RcuBox::take_all(core::slice::from_ref(&self.0), drop);
    }

    fn get(&self) -> Result<Arc<DevClass>> {
        self.0.read(|c| c.cloned()).ok_or(ENODEV)
    }
}

impl Default for ClassCell {
    fn default() -> Self {
        Self::new()
    }
}

/// `name` with a NUL, for a sysfs name; `EINVAL` if it holds a NUL.
fn c_name(name: &[u8]) -> Result<KVec<u8>> {
    if name.contains(&0) {
        return Err(EINVAL);
    }
    let mut v = KVec::with_capacity(name.len() + 1, GFP_KERNEL)?;
    v.extend_from_slice(name, GFP_KERNEL)?;
    v.push(0, GFP_KERNEL)?;
    Ok(v)
}

fn cstr(v: &[u8]) -> Result<&CStr> {
    CStr::from_bytes_with_nul(v).map_err(|_| EINVAL)
}

/// A session's device, `<class>/<name>/` with `paths/`; dropped in field
/// order (whatever the user put in it must go first).
pub struct SessDev {
    paths: PlainDir,
    dev: ClassDev,
    _class: Arc<DevClass>,
}

impl SessDev {
    /// Creates `<class>/<name>/paths/`.
    pub fn new(class: &ClassCell, name: &[u8]) -> Result<Self> {
        let class = class.get()?;
        let n = c_name(name)?;
        let dev = class.device(cstr(&n)?)?;
        let paths = PlainDir::new(dev.kobj(), kernel::c_str!("paths"))?;
        Ok(Self {
            paths,
            dev,
            _class: class,
        })
    }

    /// The device, for files of its own.
    pub fn dev(&self) -> &ClassDev {
        &self.dev
    }

    /// `paths/`.
    pub fn paths(&self) -> KobjRef<'_> {
        self.paths.kobj()
    }
}

/// A path's directory and its `stats/`, dropped in field order.
pub struct PathDirs {
    _stats: Dir,
    dir: Dir,
}

impl PathDirs {
    /// Removes the path directory's attribute `idx` from within its own
    /// store, so that the directories can then be dropped there.
    pub fn remove_self(&self, idx: usize) -> bool {
        self.dir.remove_self(idx)
    }

    /// Creates `<parent>/<name>/` with `attrs` and `<name>/stats/` with
    /// `stats_attrs`.
    pub fn new<A: Attrs, S: Attrs>(
        parent: KobjRef<'_>,
        name: &[u8],
        attrs: (&'static [Attr], Arc<A>),
        stats_attrs: (&'static [Attr], Arc<S>),
    ) -> Result<KBox<Self>> {
        let n = c_name(name)?;
        let dir = Dir::new_in(
            parent,
            cstr(&n)?,
            attrs.0,
            attrs.1,
            AttrClass::TransportPath,
        )?;
        let stats = Dir::new_in(
            dir.kobj(),
            kernel::c_str!("stats"),
            stats_attrs.0,
            stats_attrs.1,
            AttrClass::TransportStats,
        )?;
        Ok(KBox::new(Self { _stats: stats, dir }, GFP_KERNEL)?)
    }
}
