//! The netfilter queue side: binds the queues, receives packets (metadata only: the delayer
//! never reads or changes a payload), hands them to the schedule and gives each its ACCEPT
//! verdict when it is due.
//!
//! One thread, no busy waiting: between packets the program sleeps in `ppoll` on the queue's
//! netlink socket until the next packet is due or a new one arrives (nanosecond timeout, so a
//! 0 ms delay adds only the wake-up). The `nfq` crate does not expose its socket, so the socket
//! is found the way POSIX assigns descriptors: `socket()` takes the lowest free number, which
//! is probed just before `Queue::open`, and the descriptor is then checked to be a netfilter
//! netlink socket before it is used. SIGTERM/SIGINT are blocked except inside `ppoll`, so a stop
//! request is never lost between a check and the sleep; on stop every held packet is accepted
//! at once (a closed queue would drop them) and the counts are printed.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nfq::{Queue, Verdict};

use crate::schedule::{Schedule, Spec};

/// Packets the kernel may keep queued (held + waiting to be read) per queue; past that the
/// queue fails open (packets pass undelayed) instead of dropping.
const QUEUE_MAX_LEN: u32 = 65_536;
/// The netlink socket's receive buffer: lost notifications would leave packets in the kernel
/// queue with nobody to release them.
const RECV_BUFFER: libc::c_int = 8 << 20;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// What went wrong serving the queues.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot open a netfilter queue socket (needs CAP_NET_ADMIN): {0}")]
    Open(io::Error),
    #[error("cannot bind queue {queue} (is another program serving it?): {err}")]
    Bind { queue: u16, err: io::Error },
    #[error("cannot configure queue {queue}: {err}")]
    Configure { queue: u16, err: io::Error },
    #[error("the queue's socket could not be identified (descriptor {0} is not a netfilter netlink socket)")]
    Socket(libc::c_int),
    #[error("{what}: {err}")]
    Io { what: &'static str, err: io::Error },
}

/// What the delayer did, printed when it stops.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub released: u64,
    pub most_held: usize,
}

fn lowest_free_fd() -> io::Result<libc::c_int> {
    // SAFETY: a plain open/close of /dev/null; the path is a valid C string.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just opened by us.
    unsafe { libc::close(fd) };
    Ok(fd)
}

fn sockopt(fd: libc::c_int, name: libc::c_int) -> Option<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len are valid for writing and sized for an int option.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            name,
            &mut v as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    (r == 0).then_some(v)
}

/// Opens the queue and returns it with its socket's descriptor (checked).
fn open() -> Result<(Queue, libc::c_int), QueueError> {
    let expected = lowest_free_fd().map_err(|err| QueueError::Io {
        what: "probing the descriptor table",
        err,
    })?;
    let queue = Queue::open().map_err(QueueError::Open)?;
    let is_nfnetlink = sockopt(expected, libc::SO_DOMAIN) == Some(libc::AF_NETLINK)
        && sockopt(expected, libc::SO_PROTOCOL) == Some(libc::NETLINK_NETFILTER);
    if !is_nfnetlink {
        return Err(QueueError::Socket(expected));
    }
    // A larger buffer (FORCE: past rmem_max, allowed with CAP_NET_ADMIN); the default still
    // works when refused, so failure is not fatal.
    // SAFETY: setting an int option from a valid int.
    unsafe {
        libc::setsockopt(
            expected,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &RECV_BUFFER as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    Ok((queue, expected))
}

/// SIGTERM and SIGINT set STOP; both are blocked outside `ppoll`. Returns the mask ppoll
/// waits with (the current one without them).
fn signals() -> Result<libc::sigset_t, QueueError> {
    // SAFETY: sigset manipulation on local values; the handler only stores an atomic.
    unsafe {
        let mut block: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGTERM);
        libc::sigaddset(&mut block, libc::SIGINT);
        let mut old: libc::sigset_t = std::mem::zeroed();
        if libc::sigprocmask(libc::SIG_BLOCK, &block, &mut old) != 0 {
            return Err(QueueError::Io {
                what: "blocking signals",
                err: io::Error::last_os_error(),
            });
        }
        for sig in [libc::SIGTERM, libc::SIGINT] {
            libc::signal(
                sig,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            );
        }
        libc::sigdelset(&mut old, libc::SIGTERM);
        libc::sigdelset(&mut old, libc::SIGINT);
        Ok(old)
    }
}

/// Sleeps until the socket is readable, `timeout` passes (None: no limit) or a signal comes.
fn wait(fd: libc::c_int, timeout: Option<Duration>, mask: &libc::sigset_t) -> io::Result<()> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs() as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: pfd, tsp and mask are valid for the call's duration.
    let r = unsafe { libc::ppoll(&mut pfd, 1, tsp, mask) };
    if r < 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

fn accept(queue: &mut Queue, mut msg: nfq::Message) -> Result<(), QueueError> {
    msg.set_verdict(Verdict::Accept);
    queue.verdict(msg).map_err(|err| QueueError::Io {
        what: "giving a verdict",
        err,
    })
}

/// Serves the queues until SIGTERM/SIGINT; calls `ready` once every queue is bound (from then
/// on packets sent to them are held); returns what it did.
pub fn serve(
    specs: HashMap<u16, Spec>,
    reorder: bool,
    seed: u64,
    ready: impl FnOnce(),
) -> Result<Counts, QueueError> {
    let mask = signals()?;
    // Wake-ups on time: the default timer slack (50 us) would add to every delay.
    // SAFETY: prctl with an integer argument.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    let (mut queue, fd) = open()?;
    let mut nums: Vec<u16> = specs.keys().copied().collect();
    nums.sort_unstable();
    for &q in &nums {
        queue
            .bind(q)
            .map_err(|err| QueueError::Bind { queue: q, err })?;
        let configure = |err| QueueError::Configure { queue: q, err };
        // Metadata only: the verdict needs the packet's id, never its bytes.
        queue.set_copy_range(q, 0).map_err(configure)?;
        queue
            .set_queue_max_len(q, QUEUE_MAX_LEN)
            .map_err(configure)?;
        queue.set_fail_open(q, true).map_err(configure)?;
    }
    queue.set_nonblocking(true);
    ready();
    let mut schedule: Schedule<nfq::Message> = Schedule::new(specs, reorder, seed);
    let mut counts = Counts::default();
    while !STOP.load(Ordering::SeqCst) {
        let now = Instant::now();
        while let Some(msg) = schedule.pop_due(now) {
            accept(&mut queue, msg)?;
            counts.released += 1;
        }
        let timeout = schedule
            .next_due()
            .map(|at| at.saturating_duration_since(Instant::now()));
        wait(fd, timeout, &mask).map_err(|err| QueueError::Io {
            what: "waiting for packets",
            err,
        })?;
        loop {
            match queue.recv() {
                Ok(msg) => {
                    let q = msg.get_queue_num();
                    schedule.hold(q, Instant::now(), msg);
                    counts.most_held = counts.most_held.max(schedule.held_count());
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    break
                }
                Err(err) => {
                    return Err(QueueError::Io {
                        what: "receiving packets",
                        err,
                    })
                }
            }
        }
    }
    for msg in schedule.drain() {
        accept(&mut queue, msg)?;
        counts.released += 1;
    }
    for &q in &nums {
        // Best effort: closing the socket unbinds too.
        let _ = queue.unbind(q);
    }
    Ok(counts)
}

/// CPU time (user + system) this process has used.
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into a zeroed local struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
