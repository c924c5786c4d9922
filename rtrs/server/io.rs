// SPDX-License-Identifier: GPL-2.0

//! Requests: reading one from its chunk, handing it to the user, and
//! answering it.

use crate::*;

/// Reads and checks the request in the guarded chunk and hands it to the user.
pub(crate) fn process_io_req(guard: ChunkGuard, cid: u16, off: u32) {
    let path = guard.path.clone();
    let p = *path.params();
    let mr = &path.mrs[guard.id as usize];
    // The bytes the request uses: its data (a write's, which the block
    // layer may read by CPU) and its header, which ends the used part.
    let used = (off as usize)
        .saturating_add(wire::IO_MSG_MAX)
        .min(p.chunk_size as usize);
    mr.sync_range_for_cpu(0, used);
    // A private copy: the client may still write the chunk (always_invalidate
    // =N), and what was checked must be what is used.
    let mut hdr = [0u8; wire::IO_MSG_MAX];
    let n = (p.chunk_size - off).min(wire::IO_MSG_MAX as u32) as usize;
    if mr.block().read(off as usize, &mut hdr[..n]).is_err() {
        return path.close();
    }
    let req = match wire::parse_io_req(&hdr[..n], off as usize, p.max_io()) {
        Ok(r) => r,
        Err(proto::wire::WireError::BadValue {
            field: "rtrs msg type" | "io msg type",
            value,
        }) => {
            peer_err!(
                "Processing I/O request failed, unknown message type received: {:#x}\n",
                value
            );
            return path.close();
        }
        Err(e) => {
            peer_err!("Invalid I/O request in chunk {}: {:?}\n", guard.id, e);
            return Io::new(guard, cid, None, 0).respond(EINVAL.to_errno());
        }
    };
    let (usr_len, read) = match req {
        IoReq::Write { usr_len } => (usr_len, None),
        IoReq::Read(r) => (r.usr_len, Some(r)),
    };
    // Bytes as upstream counts them: the immediate's offset.
    guard.path.io_stats.count(read.is_some(), u64::from(off));
    // We advertised MAX_HDR_SIZE; a longer header is the peer's error (and
    // would cost us an allocation of up to 64 KiB per request).
    if usr_len > MAX_HDR_SIZE {
        peer_err!(
            "User header of {} bytes, more than {}\n",
            usr_len,
            MAX_HDR_SIZE
        );
        return Io::new(guard, cid, read, 0).respond(EINVAL.to_errno());
    }
    let data_len = off - usr_len;
    if let Some(ReadReq { desc: Some(d), .. }) = read {
        // The data comes from the chunk's first `data_len` bytes; a longer
        // buffer would be filled with whatever the chunk held before.
        if d.len.get() > data_len {
            peer_err!(
                "Read of {} bytes into a request of {}\n",
                d.len.get(),
                data_len
            );
            return Io::new(guard, cid, read, 0).respond(EINVAL.to_errno());
        }
    }
    let mut guard = guard;
    let copied = match guard.res.as_mut() {
        // Within the preallocated buffer unless the header is longer.
        Some(r) => {
            let n = usr_len as usize;
            r.usr_len = 0;
            let room = if r.usr.len() < n {
                KVec::from_elem(0u8, n, GFP_KERNEL)
                    .map(|b| r.usr = b)
                    .map_err(|_| ENOMEM)
            } else {
                Ok(())
            };
            room.and_then(|()| mr.block().read(data_len as usize, &mut r.usr[..n]))
                .map(|()| r.usr_len = n)
        }
        None => Err(EINVAL),
    };
    if let Err(e) = copied {
        return Io::new(guard, cid, read, 0).respond(e.to_errno());
    }
    let io = Io::new(guard, cid, read, data_len);
    match path.sess.user() {
        Some(u) => u.rdma_ev(io),
        None => io.respond(enotconn().to_errno()),
    }
}

/// A request handed to the user.  Owns its chunk until answered.
pub struct Io {
    pub(crate) guard: Option<ChunkGuard>,
    pub(crate) cid: u16,
    pub(crate) read: Option<ReadReq>,
    pub(crate) data_len: u32,
}

impl Io {
    /// The user header is the guard's `usr` (empty until copied).
    pub(crate) fn new(guard: ChunkGuard, cid: u16, read: Option<ReadReq>, data_len: u32) -> Self {
        Self {
            guard: Some(guard),
            cid,
            read,
            data_len,
        }
    }

    pub(crate) fn chunk(&self) -> Option<&BlockMr> {
        let g = self.guard.as_ref()?;
        Some(&g.path.mrs[g.id as usize])
    }

    /// The user header (a private copy).
    pub fn usr(&self) -> &[u8] {
        match self.guard.as_ref().and_then(|g| g.res.as_ref()) {
            Some(r) => r.usr.get(..r.usr_len).unwrap_or(&[]),
            None => &[],
        }
    }

    /// True for a read (the server sends data), false for a write.
    pub fn is_read(&self) -> bool {
        self.read.is_some()
    }

    /// Bytes of data: written by the client, or to be sent back for a read.
    pub fn data_len(&self) -> usize {
        self.data_len as usize
    }

    /// The chunk whose first [`Io::data_len`] bytes hold the data.
    pub fn data(&self) -> Option<&Arc<PageBlock>> {
        self.chunk().map(|m| m.block())
    }

    /// Copies `src` into the data at `off` (within [`Io::data_len`]).
    pub fn write_data(&self, off: usize, src: &[u8]) -> Result {
        let end = off.checked_add(src.len()).ok_or(EINVAL)?;
        if end > self.data_len() {
            return Err(EINVAL);
        }
        self.chunk().ok_or(EINVAL)?.block().write(off, src)
    }

    /// Answers the request with `status` (0 or a negative errno), sending the
    /// data of a successful read.  Any context but an interrupt: it does not
    /// sleep (posting takes no lock), so a bio's completion answers
    /// directly; not from hard or soft interrupts, where a chunk's resource
    /// slot (a plain spinlock) could be taken by what it interrupted.
    pub fn respond(mut self, status: i32) {
        if let Some(guard) = self.guard.take() {
            respond_now(guard, self.cid, self.read, self.data_len, status);
        }
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        // Never leave a request unanswered: the client would wait forever.
        if let Some(guard) = self.guard.take() {
            respond_now(guard, self.cid, self.read, self.data_len, EIO.to_errno());
        }
    }
}

/// The answer's work requests; the guard's resources hold the rkey
/// message they send.
pub(crate) struct Resp {
    /// The request's chunk while posted; `None` otherwise.
    pub(crate) guard: Option<ChunkGuard>,
}

impl Reuse for Resp {
    fn done(mut this: KBox<Posted<Self>>, wc: &WorkCompletion) {
        let Some(mut guard) = this.get_mut().guard.take() else {
            return pr_err!("IO response without its request\n");
        };
        if wc.status != Status::Success {
            if let Status::Error(s) = wc.status {
                peer_err!("IO response failed: status {}\n", s);
            }
            guard.path.close();
        }
        if let Some(r) = guard.res.as_mut() {
            r.resp = Some(this);
        }
        // The guard's drop gives the resources back to the chunk.
    }
}

/// Posts the answer (any context but an interrupt, see [`Io::respond`]).
pub(crate) fn respond_now(
    mut guard: ChunkGuard,
    cid: u16,
    read: Option<ReadReq>,
    data_len: u32,
    status: i32,
) {
    // Still needed once the guard is posted, and may then be the last.
    let path = DeferredArc::new((*guard.path).clone());
    if path.state() != State::Connected {
        return;
    }
    let p = *path.params();
    let id = guard.id;
    let mr = &path.mrs[id as usize];
    let desc = read.and_then(|r| r.desc);
    let need_inval = read.map(|r| r.need_inval).unwrap_or(false);
    let send_data = status == 0 && desc.is_some();
    let imm = Imm::IoRsp {
        msg_id: id,
        errno: status,
        with_inval: need_inval,
    }
    .encode();
    let Some(res) = guard.res.as_mut() else {
        return path.close();
    };
    let with_rkey = p.always_invalidate;
    if with_rkey {
        // The chunk gets a key the client has not seen, registered before the
        // answer and announced with it.
        mr.bump_key();
        let m = wire::RkeyRsp {
            ty: Le16::new(wire::MsgType::RkeyRsp as u16),
            buf_id: Le16::new(id as u16),
            rkey: Le32::new(mr.rkey()),
        };
        match res.rkey_msg.as_mut() {
            Some(b) => b.with_cpu_mut(|s| s.copy_from_slice(&m.to_bytes())),
            None => return path.close(),
        }
    }
    let Some(mut resp) = res.resp.take() else {
        return path.close();
    };
    if read.is_some() {
        // What the block layer or the user (`Io::write_data`) may have
        // written: the data part, not the whole chunk; also on an error,
        // so that no dirty line is written back over the client's next
        // request.
        mr.sync_range_for_device(0, data_len as usize);
    }
    guard.release_chunk();
    resp.get_mut().guard = Some(guard);
    let r = path.core.post_boxed(cid, resp, |o| {
        let g = o.guard.as_ref().ok_or(EINVAL)?;
        let mr = &g.path.mrs[g.id as usize];
        let rkey_msg = match g.res.as_ref().and_then(|r| r.rkey_msg.as_ref()) {
            Some(b) if with_rkey => Some(b),
            _ => None,
        };
        let mut c = Chain::new();
        if send_data {
            if let Some(d) = desc {
                c.push(SendOp::Write {
                    sge: mr.sge(0, d.len.get() as usize)?,
                    remote_addr: d.addr.get(),
                    rkey: d.key.get(),
                })?;
            }
            if rkey_msg.is_some() {
                c.push(SendOp::RegBlock {
                    mr,
                    access: Access::REMOTE_WRITE,
                })?;
            }
            if need_inval {
                if let Some(d) = desc {
                    c.push(SendOp::SendInv { rkey: d.key.get() })?;
                }
            }
        } else {
            if need_inval {
                if let Some(d) = desc {
                    c.push(SendOp::SendInv { rkey: d.key.get() })?;
                }
            }
            if rkey_msg.is_some() {
                c.push(SendOp::RegBlock {
                    mr,
                    access: Access::REMOTE_WRITE,
                })?;
            }
        }
        match rkey_msg {
            Some(b) => c.push(SendOp::SendImm {
                sge: Some(b.sge(0, wire::RkeyRsp::SIZE)?),
                imm,
            })?,
            None => c.push(SendOp::WriteImm {
                sge: None,
                remote_addr: 0,
                rkey: 0,
                imm,
            })?,
        }
        Ok(c)
    });
    if let Err(e) = r {
        peer_err!("IO response failed: {:?}\n", e);
        path.close();
    }
}
