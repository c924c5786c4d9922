// SPDX-License-Identifier: GPL-2.0

//! Completions of a request's receives, send chain and invalidation.

use crate::*;

/// A posted receive.
pub(crate) struct Recv {
    pub(crate) path: Arc<Path>,
    pub(crate) cid: u16,
    pub(crate) buf: Option<DmaBuf>,
}

impl Reuse for Recv {
    fn done(this: KBox<Posted<Self>>, wc: &WorkCompletion) {
        let (path, cid) = (this.get().path.clone(), this.get().cid);
        if wc.status != Status::Success {
            if wc.status != Status::Flushed {
                support::peer_err!("RDMA failed: {:?}\n", wc.status);
            }
            return path.close();
        }
        path.core.hb_seen();
        // An rkey message is copied out before its buffer is posted again.
        let rkey_msg = match (wc.opcode, wc.imm, this.get().buf.as_ref()) {
            (Opcode::Recv, Some(_), Some(b)) => Some(b.with_cpu(|s| {
                wire::RkeyRsp::from_bytes(&s[..(wc.byte_len as usize).min(s.len())])
            })),
            _ => None,
        };
        if let Err(e) = path.repost_recv(this) {
            support::peer_err!("post_recv failed: {:?}\n", e);
            return path.close();
        }
        let imm = match (wc.opcode, wc.imm) {
            (Opcode::RecvRdmaWithImm, Some(imm)) => imm,
            (Opcode::Recv, Some(imm)) => {
                // An answer with a new key for the server's chunk.
                let Some(msg) = rkey_msg else {
                    support::peer_err!("rkey response without a buffer\n");
                    return path.close();
                };
                let msg = match msg {
                    Ok(m) if m.ty.get() == wire::MsgType::RkeyRsp as u16 => m,
                    _ => {
                        support::peer_err!("rkey response is malformed: size {}\n", wc.byte_len);
                        return path.close();
                    }
                };
                let buf_id = msg.buf_id.get() as u32;
                let chunk = match Imm::try_from(imm) {
                    Ok(Imm::IoRsp { msg_id, .. }) if msg_id == buf_id => {
                        path.raddr.get(buf_id as usize)
                    }
                    _ => None,
                };
                match chunk {
                    // `io_rsp` then checks that the request is in flight.
                    Some(r) => r.rkey.store(msg.rkey.get(), Ordering::Release),
                    None => {
                        support::peer_err!(
                            "rkey response for buffer {} does not match its immediate {:#x}\n",
                            buf_id,
                            imm
                        );
                        return path.close();
                    }
                }
                imm
            }
            // The server's SEND_WITH_INV of a read buffer's key: the answer
            // that follows says so.
            (Opcode::Recv, None) => match wc.invalidated_rkey {
                Some(rkey) => return path.remote_inv(cid, rkey),
                None => {
                    support::peer_warn!("Unexpected WC type: {:?}\n", wc.opcode);
                    return path.close();
                }
            },
            (op, _) => {
                support::peer_warn!("Unexpected WC type: {:?}\n", op);
                return path.close();
            }
        };
        match Imm::try_from(imm) {
            Ok(Imm::IoRsp {
                msg_id,
                errno,
                with_inval,
            }) => path.io_rsp(cid, msg_id, errno, with_inval),
            Ok(Imm::HbMsg) => {
                if let Err(e) = PathCore::send_imm(&path, Imm::HbAck, "HB ACK") {
                    support::peer_err!("HB ACK send failed, errno: {:?}\n", e);
                    path.close();
                }
            }
            Ok(Imm::HbAck) => path.core.hb_acked(),
            _ => support::peer_warn!("Unknown IMM type {:#x}\n", imm),
        }
    }
}

/// The send chain of a request, preallocated per permit.
///
/// It owns the table whose pages and header the chain's SGEs and
/// registration name, so the device's view stays valid until the chain
/// completes; the box then goes back to the request's permit.
pub(crate) struct Tx {
    /// The path of the request's current attempt, from its submission to
    /// its end (so that its end finds the path's in-flight count); `None`
    /// while the permit is free.
    pub(crate) path: Option<Arc<Path>>,
    pub(crate) id: u32,
    pub(crate) sg: SgTable,
    /// The paths the request was sent on and failed over from.
    pub(crate) tried: Tried,
    /// Length of the user header at the start of the table's header, for
    /// sending the request again on another path.
    pub(crate) usr_len: u16,
}

impl Reuse for Tx {
    fn done(mut this: KBox<Posted<Self>>, wc: &WorkCompletion) {
        let t = this.get_mut();
        let id = t.id;
        let Some(path) = t.path.clone() else {
            return pr_err!("send completion of request {} without a path\n", id);
        };
        let ok = wc.status == Status::Success;
        if let Status::Error(s) = wc.status {
            support::peer_err!("IO request send failed: status {}\n", s);
        }
        let sess = &path.sess;
        let Some(slot) = sess.slots.get(id as usize) else {
            let _ = KBox::into_raw(this);
            return path.close();
        };
        let in_flight = slot.state.load(Ordering::Acquire) & st::IN_FLIGHT != 0;
        let unplaced = if in_flight {
            slot.tx.put(this).err()
        } else {
            Some(this)
        };
        if let Some(mut tx) = unplaced {
            // Cannot happen (a request ends only after its send's owner is
            // back); its pages may still be registered, so the table is
            // neither unmapped nor reused (but the path is not kept).
            tx.get_mut().path = None;
            let _ = KBox::into_raw(tx);
            pr_err!(
                "send completion of request {}, which is not in flight\n",
                id
            );
            return path.close();
        }
        let Some(new) = sess.mark(id, st::TX_BACK | if ok { st::SENT } else { 0 }) else {
            return;
        };
        if !ok {
            // The path's close fails the request once the QPs are drained.
            return path.close();
        }
        // A write through a registration revokes it once sent; so does a
        // read answered without a (confirmed) remote invalidation before
        // its send completed.
        if new & st::USE_MR != 0
            && new & st::INVALIDATED == 0
            && (new & st::READ == 0 || new & st::ANSWERED != 0)
        {
            return path.local_inv(st::cid(new), id);
        }
        sess.maybe_complete(id, new);
    }
}

/// Our local invalidation of a request's registration, preallocated per
/// permit.
pub(crate) struct Inval {
    /// The path it is posted on; `None` while not posted.
    pub(crate) path: Option<Arc<Path>>,
    pub(crate) id: u32,
}

impl Reuse for Inval {
    fn done(mut this: KBox<Posted<Self>>, wc: &WorkCompletion) {
        let t = this.get_mut();
        let id = t.id;
        let Some(path) = t.path.take() else {
            return pr_err!("invalidation of request {} without a path\n", id);
        };
        let ok = wc.status == Status::Success;
        if !ok && wc.status != Status::Flushed {
            support::peer_err!("Failed IB_WR_LOCAL_INV: {:?}\n", wc.status);
        }
        if ok {
            // Only now can nobody access the request's pages through the
            // registration any more.
            if let Some(mr) = path.mrs.get(id as usize) {
                mr.release();
            }
        }
        let sess = &path.sess;
        let back = sess
            .slots
            .get(id as usize)
            .is_some_and(|s| s.inv.put(this).is_ok());
        if back {
            let bits = st::INV_BACK | if ok { st::INVALIDATED } else { 0 };
            if let Some(new) = sess.mark(id, bits) {
                sess.maybe_complete(id, new);
            }
        }
        if !ok {
            path.close();
        }
    }
}
