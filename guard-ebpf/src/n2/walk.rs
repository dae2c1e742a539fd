//! The bounded walks of `guard_n2`, each step starting from state the verifier knows nothing about
//! so it sees the same state at every step (ARCHITECTURE.md, "Verifier lesson from N2"): the frame,
//! the SCTP chunks (an `#[inline(never)]` call each), and the InitialUEMessages of a packet through
//! `bpf_loop`, each an NGAP IE walk (inline, a fresh view of the packet per IE header and value).

use super::*;

/// Walk and account the InitialUEMessages the chunk walk recorded in `N2_PKT` (called only for a
/// well-formed, passed packet with DATA, right after its parse).
///
/// Through the `bpf_loop` helper (kernel 5.17), one [`ue_loop_step`] call per InitialUEMessage.
/// Why not a loop of calls, as for chunks: a bounded loop's counter is precise for the verifier,
/// so it verifies the whole InitialUEMessage walk (a dozen IEs) once per iteration; with 16
/// messages per packet that was 597,470 instructions. A `bpf_loop` callback starts from an
/// unknown index and a pointer, so its states converge after one or two passes, and the cost no
/// longer grows with [`MAX_UE_MSGS`]. Inline in `policy`: as a subprogram of its own it cost
/// 27 ns more a packet (`cargo xtask bench --ab`, BENCHMARKS.md §26).
#[inline(always)]
pub(super) fn walk_ues(ctx: &XdpContext, peer: *mut N2PeerState) {
    let Some(pp) = N2_PKT.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU slot, only this CPU uses it while this program runs.
    let n = unsafe { (*pp).ue_count } as u32;
    if n == 0 {
        return;
    }
    let mut lc = UeLoop { ctx: core::hint::black_box(ctx.ctx), peer };
    let cb: extern "C" fn(u64, *mut c_void) -> i64 = ue_loop_step;
    // SAFETY: `bpf_loop` calls `cb` at most `n` times with `&mut lc`, which outlives the call;
    // flags must be 0.
    unsafe {
        bpf_loop(n.min(MAX_UE_MSGS as u32), cb as *mut c_void, &mut lc as *mut UeLoop as *mut c_void, 0);
    }
}

/// What [`ue_loop_step`] gets: the XDP context and the peer's `N2_PEERS` entry (8-byte spills
/// the verifier follows back to the context and map-value pointers).
#[repr(C)]
pub(super) struct UeLoop {
    ctx: *mut xdp_md,
    peer: *mut N2PeerState,
}

/// One InitialUEMessage: the `i`-th one recorded in `N2_PKT`. Returns 0 (go on) or 1 (stop), as
/// `bpf_loop` wants.
#[inline(never)]
extern "C" fn ue_loop_step(i: u64, data: *mut c_void) -> i64 {
    // SAFETY: `data` is the `UeLoop` that `walk_ues` passed, alive during `bpf_loop`.
    let (raw, peer) = unsafe { ((*(data as *const UeLoop)).ctx, (*(data as *const UeLoop)).peer) };
    let ctx = XdpContext::new(raw);
    let Some(pp) = N2_PKT.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: per-CPU slot, only this CPU uses it while this program runs.
    let p = unsafe { &*pp };
    let i = i as usize;
    if i >= p.ue_count as usize || i >= MAX_UE_MSGS {
        return 1;
    }
    initial_ue(&ctx, p, i, peer);
    0
}

/// Ethernet, IP and the SCTP common header, in a BPF subprogram of its own (see
/// `n3::parse_frame`).
#[inline(never)]
pub(super) fn parse_frame(
    ctx: &XdpContext,
    ngap_port: u16,
    s1ap_port: u16,
    out: &mut N2Packet,
) -> Result<bool, N2Malformed> {
    // Keep the context pointer opaque: otherwise LLVM passes `data` and `data_end` as promoted
    // arguments, and the verifier forbids arithmetic on a `pkt_end` it did not load itself.
    let ctx = XdpContext::new(core::hint::black_box(ctx.ctx));
    n2::parse_head(&XdpPacket::new(&ctx), ngap_port, s1ap_port, out)
}

/// [`chunk_step`] results: another chunk may follow, the walk is over, or `STEP_ERR + reason`.
pub(super) const STEP_MORE: u32 = 0;
pub(super) const STEP_DONE: u32 = 1;
pub(super) const STEP_ERR: u32 = 2;

#[inline(always)]
pub(super) fn step_error(code: u32) -> N2Malformed {
    let r = code.wrapping_sub(STEP_ERR);
    match N2Malformed::ALL.get(r as usize) {
        Some(m) => *m,
        None => N2Malformed::ChunkTruncated,
    }
}

/// One chunk (`n2::chunk_step`) per call of this BPF subprogram. Why a subprogram: unrolled
/// inline, every path through one chunk (its type, its class, DATA or not, PPID, PDU kind)
/// multiplies the paths of the next, and the walk offset differs on each, so the verifier could
/// not prune and hit its 1M-instruction limit. Here each step starts from the walk state *loaded
/// from the per-CPU map value* (`out.cur`, `out.end`): the verifier knows nothing about it, so
/// every step is verified once per call site, whatever came before. The result is a small code
/// (a register), not a `Result` in memory.
#[inline(never)]
pub(super) fn chunk_step(ctx: &XdpContext, out: &mut N2Packet) -> u32 {
    let ctx = XdpContext::new(core::hint::black_box(ctx.ctx));
    match n2::chunk_step(&XdpPacket::new(&ctx), out) {
        Ok(true) => STEP_MORE,
        Ok(false) => STEP_DONE,
        Err(m) => STEP_ERR + m as u32,
    }
}

/// The InitialUEMessage walk: the PDU header, then its IEs, in a BPF subprogram of its own (called
/// once per InitialUEMessage of the packet).
///
/// The IEs are walked inline, not one subprogram call per IE as the chunks are: see [`ie_one`]
/// and [`ie_walk`]. A call per IE cost ~6.5 ns each where returns are dear (BENCHMARKS.md §26).
#[inline(never)]
pub(super) fn parse_ue(ctx: &XdpContext, off: u32, end: u32, proto: u8, out: &mut InitialUe) -> Result<(), NgapError> {
    {
        let ctx = XdpContext::new(core::hint::black_box(ctx.ctx));
        ngap::initial_ue_head(&XdpPacket::new(&ctx), off as usize, end as usize, proto, out)?;
    }
    if out.ies_done() {
        return Ok(());
    }
    match ie_walk(ctx, out) {
        STEP_MORE | STEP_DONE => Ok(()),
        e => Err(ie_error(e)),
    }
}

/// Up to [`ngap::MAX_IES`] IEs (the caller saw that there is a first), one [`ie_one`] after the
/// other until the container's end or an error: the code of the last.
///
/// Its shape is the verifier's: the first IE before the loop, the loop's exits only through
/// `break`. The same walk with all twelve IEs inside the loop (leaving it through `break` alone,
/// or with an early `return` on an error) ran past the verifier's 1,000,000 instructions
/// (measured); this one verifies in ~212,000 for the whole program (`tests/tests/replay_cost.rs`,
/// held under 500,000 by `verdict::n2::chunks::guard_n2_verifies_within_budget`).
#[inline(always)]
fn ie_walk(ctx: &XdpContext, out: &mut InitialUe) -> u32 {
    let mut r = ie_one(ctx, out);
    for _ in 1..ngap::MAX_IES {
        if r != STEP_MORE || out.ies_done() {
            break;
        }
        r = ie_one(ctx, out);
    }
    r
}

#[inline(always)]
pub(super) fn ie_error(code: u32) -> NgapError {
    match code.wrapping_sub(STEP_ERR) {
        0 => NgapError::Truncated,
        1 => NgapError::BadLength,
        2 => NgapError::NotInitialUe,
        _ => NgapError::Window,
    }
}

/// One protocol IE: its header (`ngap::ie_header`), then its value (`ngap::ie_decode`), each from
/// its own view of the packet (the context through `black_box`) and the walk state it loads from
/// the per-CPU record (`out.cur`, `out.ie_*`). The verifier knows nothing about either, so the
/// paths through the length determinant, those through the value decoders and those of the next
/// IE add up instead of multiplying. With one view for a whole IE, or one for the whole walk, the
/// verifier gave up at 1,000,000 instructions (measured).
#[inline(always)]
fn ie_one(ctx: &XdpContext, out: &mut InitialUe) -> u32 {
    let r = {
        let ctx = XdpContext::new(core::hint::black_box(ctx.ctx));
        ngap::ie_header(&XdpPacket::new(&ctx), out)
    };
    match r {
        Ok(true) => ie_value(ctx, out),
        Ok(false) => STEP_DONE,
        Err(e) => ie_code(e),
    }
}

#[inline(always)]
fn ie_value(ctx: &XdpContext, out: &mut InitialUe) -> u32 {
    let ctx = XdpContext::new(core::hint::black_box(ctx.ctx));
    match ngap::ie_decode(&XdpPacket::new(&ctx), out) {
        Ok(()) => STEP_MORE,
        Err(e) => ie_code(e),
    }
}

#[inline(always)]
fn ie_code(e: NgapError) -> u32 {
    match e {
        NgapError::Truncated => STEP_ERR,
        NgapError::BadLength => STEP_ERR + 1,
        NgapError::NotInitialUe => STEP_ERR + 2,
        NgapError::Window => STEP_ERR + 3,
    }
}
