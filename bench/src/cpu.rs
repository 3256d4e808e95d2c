//! CPU time spent by processes, from `/proc`: a server's own, and a PostgreSQL cluster's
//! (its postmaster, its live backends, and the backends that already exited, which the
//! kernel adds to the postmaster's children times). CPU per request is the measure that a
//! busy 2-core machine disturbs least.

use std::time::Duration;

/// Clock ticks per second of `/proc/<pid>/stat` times (`_SC_CLK_TCK`, 100 on Linux).
const TICKS_PER_SECOND: u64 = 100;

/// The times of `/proc/<pid>/stat`: (utime + stime, cutime + cstime, parent pid).
fn stat(pid: u32) -> Option<(u64, u64, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields restart after its closing parenthesis.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i)?.parse::<u64>().ok();
    // After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    Some((
        field(11)? + field(12)?,
        field(13)? + field(14)?,
        u32::try_from(field(1)?).ok()?,
    ))
}

fn ticks(t: u64) -> Duration {
    Duration::from_millis(t * 1000 / TICKS_PER_SECOND)
}

/// CPU time of process `pid` so far (zero if it is gone).
pub fn process(pid: u32) -> Duration {
    stat(pid).map_or(Duration::ZERO, |(own, _, _)| ticks(own))
}

/// CPU time of the process tree under `root` so far, exited children included.
pub fn tree(root: u32) -> Duration {
    let Some((own, children, _)) = stat(root) else {
        return Duration::ZERO;
    };
    let mut total = own + children;
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some((own, _, parent)) = stat(pid)
                && parent == root
            {
                total += own;
            }
        }
    }
    ticks(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_grows() {
        let pid = std::process::id();
        let before = process(pid);
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(60) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let own = process(pid);
        assert!(own > before);
        // Sampled after `own`: the process keeps running (other test threads)
        // between the two reads, so the tree must come second.
        assert!(tree(pid) >= own);
    }
}
