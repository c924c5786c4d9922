// SPDX-License-Identifier: GPL-2.0

//! Chunks owned by requests: the guard, the preallocated resources of a
//! request, and the invalidation that starts a request.

use crate::*;

/// A chunk owned by a request, and the request counted in flight.
///
/// The chunk is released just before the answer is posted ([`ChunkGuard::
/// release_chunk`]): the client may reuse it as soon as it sees the answer,
/// which can be before the answer's own send completion reaches us.  The
/// in-flight count drops with the guard, after that completion.
///
/// A guard may be dropped in an atomic context (an answer given from a
/// bio's completion, see [`Io::respond`]), where the path's last reference
/// must not go.  Fields drop in order, `path` before `_counted`, so the
/// close work, which waits for the count, still holds the path then; after
/// it stopped waiting, `path` (a [`DeferredArc`]) hands a last reference to
/// the path's `release_w`.
pub(crate) struct ChunkGuard {
    pub(crate) path: DeferredArc<Path>,
    pub(crate) id: u32,
    pub(crate) holds_chunk: bool,
    /// The request's resources, back to the chunk's slot on drop.
    pub(crate) res: Option<KBox<ChunkRes>>,
    /// Dropped after `path`.
    pub(crate) _counted: Counted,
}

/// The preallocated work requests and buffers of a request on one chunk.
pub(crate) struct ChunkRes {
    /// The chunk's local invalidation (always_invalidate); `None` while posted.
    pub(crate) inv: Option<KBox<Posted<Inval>>>,
    /// The answer; `None` while posted.
    pub(crate) resp: Option<KBox<Posted<Resp>>>,
    /// The user header's private copy: its first `usr_len` bytes.
    pub(crate) usr: KVec<u8>,
    pub(crate) usr_len: usize,
    /// The rkey message of the answer (always_invalidate).
    pub(crate) rkey_msg: Option<DmaBuf>,
}

/// Resource sets per chunk: a client may reuse a chunk as soon as it sees
/// the answer, on another connection whose completion can run before our
/// answer's send completion; with two sets that costs no allocation unless
/// a third request on the chunk comes in before then.
pub(crate) const RES_PER_CHUNK: usize = 2;

/// Room for user headers without an allocation (RNBD's are below 300 bytes;
/// a longer one, up to [`MAX_HDR_SIZE`], grows the buffer).
pub(crate) const USR_PREALLOC: usize = 512;

impl ChunkRes {
    pub(crate) fn new(pd: &Arc<Pd>, always_invalidate: bool) -> Result<Self> {
        let rkey_msg = if always_invalidate {
            Some(DmaBuf::new(
                pd,
                wire::RkeyRsp::SIZE,
                Direction::ToDevice,
                GFP_KERNEL,
            )?)
        } else {
            None
        };
        Ok(Self {
            inv: Some(Posted::new_reused(
                Inval {
                    guard: None,
                    cid: 0,
                    off: 0,
                },
                GFP_KERNEL,
            )?),
            resp: Some(Posted::new_reused(Resp { guard: None }, GFP_KERNEL)?),
            usr: KVec::from_elem(0u8, USR_PREALLOC, GFP_KERNEL)?,
            usr_len: 0,
            rkey_msg,
        })
    }
}

impl ChunkGuard {
    pub(crate) fn release_chunk(&mut self) {
        if core::mem::replace(&mut self.holds_chunk, false) {
            self.path.busy[self.id as usize].store(false, Ordering::Release);
        }
    }
}

impl Drop for ChunkGuard {
    fn drop(&mut self) {
        self.release_chunk();
        if let Some(mut r) = self.res.take() {
            // A set allocated because both were taken is dropped if both
            // are back (a streaming DMA unmap and frees: any context).
            for slot in self.path.res[self.id as usize].iter() {
                match slot.put(r) {
                    Ok(()) => return,
                    Err(back) => r = back,
                }
            }
        }
    }
}

/// The local invalidation of a chunk before its request is read.
pub(crate) struct Inval {
    /// The request's chunk while posted; `None` otherwise.
    pub(crate) guard: Option<ChunkGuard>,
    pub(crate) cid: u16,
    pub(crate) off: u32,
}

impl Reuse for Inval {
    fn done(mut this: KBox<Posted<Self>>, wc: &WorkCompletion) {
        let v = this.get_mut();
        let (cid, off) = (v.cid, v.off);
        let Some(mut guard) = v.guard.take() else {
            return pr_err!("chunk invalidation without its request\n");
        };
        if let Some(r) = guard.res.as_mut() {
            r.inv = Some(this);
        }
        if wc.status != Status::Success {
            peer_err!("Failed IB_WR_LOCAL_INV: {:?}\n", wc.status);
            return guard.path.close();
        }
        process_io_req(guard, cid, off);
    }
}
