//! The execution environment's limits, as far as this machine allows them without root: the
//! function's MemorySize (a cgroup's memory limit where one is writable, and in any case a watch on
//! the process's resident memory), and a CPU share proportional to memory (Lambda gives a full vCPU
//! at 1,769 MB) where a cgroup's CPU quota is writable. `describe` says which held.
//! <https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html>

use std::path::PathBuf;

/// Memory at which Lambda gives one full vCPU.
pub const MB_PER_VCPU: f64 = 1769.0;
/// The CPU quota period (µs) written to the cgroup.
#[cfg(target_os = "linux")]
const CPU_PERIOD_US: u64 = 100_000;

/// A cgroup made for one execution environment: its directories, removed on drop.
#[derive(Debug, Default)]
struct Cgroup {
    /// The memory controller's directory (v1) or the unified one (v2).
    memory: Option<PathBuf>,
    /// The CPU controller's directory (v1) or the unified one (v2).
    cpu: Option<PathBuf>,
    /// cgroup v2: both controllers live in `memory`.
    unified: bool,
}

/// The limits of one execution environment.
#[derive(Debug)]
pub struct Limits {
    memory_mb: u64,
    cgroup: Cgroup,
}

impl Limits {
    /// Limits for a function of `memory_mb`, in cgroups named after `name` where they can be made
    /// (Linux only: cgroups and /proc are Linux's; elsewhere nothing is limited or watched).
    pub fn new(memory_mb: u64, name: &str) -> Limits {
        #[cfg(target_os = "linux")]
        let cgroup = Cgroup::make(name, memory_mb).unwrap_or_default();
        #[cfg(not(target_os = "linux"))]
        let cgroup = {
            let _ = name;
            Cgroup::default()
        };
        Limits { memory_mb, cgroup }
    }

    /// The function's memory in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_mb * 1024 * 1024
    }

    /// Puts a just-started process under the cgroup limits (a no-op without cgroups).
    pub fn apply(&self, pid: u32) {
        let dirs = [&self.cgroup.memory, if self.cgroup.unified { &None } else { &self.cgroup.cpu }];
        for dir in dirs.into_iter().flatten() {
            if let Err(e) = std::fs::write(dir.join("cgroup.procs"), pid.to_string()) {
                tracing::warn!("could not put the function in {}: {e}", dir.display());
            }
        }
    }

    /// True when the process is over the function's memory: its resident set, or the cgroup's
    /// count of OOM kills.
    pub fn exceeded(&self, pid: Option<u32>) -> bool {
        let rss = pid.and_then(|p| resident_bytes(&format!("/proc/{p}/status")));
        rss.is_some_and(|r| r > self.memory_bytes()) || self.cgroup.oom_kills() > 0
    }

    /// What is limited, and how, for the summary.
    pub fn describe(&self) -> String {
        let memory = match &self.cgroup.memory {
            Some(_) => format!("memory {} MB (cgroup limit)", self.memory_mb),
            None => format!("memory {} MB (resident memory watched; no writable cgroup)", self.memory_mb),
        };
        let cpu = match &self.cgroup.cpu {
            Some(_) => format!("CPU {:.2} vCPU (cgroup quota)", vcpus(self.memory_mb)),
            None => "CPU not limited (no writable cgroup): the function gets this machine's CPU".to_string(),
        };
        format!("{memory}, {cpu}")
    }
}

/// The vCPUs Lambda gives a function of `memory_mb`.
pub fn vcpus(memory_mb: u64) -> f64 {
    memory_mb as f64 / MB_PER_VCPU
}

/// VmRSS of a /proc/<pid>/status file, in bytes.
fn resident_bytes(status: &str) -> Option<u64> {
    status_bytes(status, "VmRSS:")
}

/// The most memory process `pid` has held since it started (its peak resident set, VmHWM): what
/// Lambda's REPORT line calls Max Memory Used.
pub fn peak_resident_bytes(pid: u32) -> Option<u64> {
    status_bytes(&format!("/proc/{pid}/status"), "VmHWM:")
}

fn status_bytes(status: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(status).ok()?;
    let kb: u64 =
        text.lines().find_map(|l| l.strip_prefix(field))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

#[cfg(target_os = "linux")]
impl Cgroup {
    /// A cgroup for one environment under this process's own, v2 when its controllers are
    /// available, else v1; `None` when neither can be written.
    fn make(name: &str, memory_mb: u64) -> Option<Cgroup> {
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let bytes = memory_mb * 1024 * 1024;
        let quota = ((CPU_PERIOD_US as f64 * vcpus(memory_mb)) as u64).max(1_000);
        if let Some(dir) = v2_dir(&own, name) {
            let ok = |file: &str, value: String| std::fs::write(dir.join(file), value).is_ok();
            if ok("memory.max", bytes.to_string()) {
                let cpu = ok("cpu.max", format!("{quota} {CPU_PERIOD_US}")).then(|| dir.clone());
                let _ = ok("memory.swap.max", "0".into());
                return Some(Cgroup { memory: Some(dir), cpu, unified: true });
            }
            let _ = std::fs::remove_dir(&dir);
        }
        let memory = v1_dir(&own, "memory", name).filter(|d| {
            let ok = std::fs::write(d.join("memory.limit_in_bytes"), bytes.to_string()).is_ok();
            // With swap accounting, swap counts too: no more than the memory itself.
            let _ = std::fs::write(d.join("memory.memsw.limit_in_bytes"), bytes.to_string());
            ok || std::fs::remove_dir(d).is_err()
        });
        let cpu = v1_dir(&own, "cpu", name).filter(|d| {
            let ok = std::fs::write(d.join("cpu.cfs_period_us"), CPU_PERIOD_US.to_string()).is_ok()
                && std::fs::write(d.join("cpu.cfs_quota_us"), quota.to_string()).is_ok();
            ok || std::fs::remove_dir(d).is_err()
        });
        (memory.is_some() || cpu.is_some()).then_some(Cgroup { memory, cpu, unified: false })
    }
}

impl Cgroup {
    /// OOM kills the kernel counted in this cgroup.
    fn oom_kills(&self) -> u64 {
        let Some(dir) = &self.memory else { return 0 };
        let (file, key) =
            if self.unified { ("memory.events", "oom_kill ") } else { ("memory.oom_control", "oom_kill ") };
        std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|t| t.lines().find_map(|l| l.strip_prefix(key)?.trim().parse().ok()))
            .unwrap_or(0)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // The processes are gone by now (the environment stops them first); an empty cgroup goes.
        for dir in [&self.memory, &self.cpu].into_iter().flatten() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// A new v2 cgroup next to this process's, when the memory controller is enabled there.
#[cfg(target_os = "linux")]
fn v2_dir(own: &str, name: &str) -> Option<PathBuf> {
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let mount = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .map(std::path::Path::new)
        .find(|m| m.join("cgroup.controllers").is_file())?;
    let parent = mount.join(path.trim_start_matches('/'));
    let controllers = std::fs::read_to_string(parent.join("cgroup.subtree_control")).ok()?;
    if !controllers.split_whitespace().any(|c| c == "memory") {
        return None;
    }
    let dir = parent.join(name);
    std::fs::create_dir(&dir).ok().map(|()| dir)
}

/// A new v1 cgroup of `controller` under this process's.
#[cfg(target_os = "linux")]
fn v1_dir(own: &str, controller: &str, name: &str) -> Option<PathBuf> {
    let path = own.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers.split(',').any(|c| c == controller).then_some(path)
    })?;
    let dir = std::path::Path::new("/sys/fs/cgroup").join(controller).join(path.trim_start_matches('/')).join(name);
    std::fs::create_dir(&dir).ok().map(|()| dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_follows_memory_as_in_lambda() {
        assert!((vcpus(1769) - 1.0).abs() < 1e-9);
        assert!((vcpus(128) - 0.0724).abs() < 1e-3);
        assert!((vcpus(10_240) - 5.79).abs() < 1e-2);
    }

    #[test]
    fn resident_memory_is_read_from_proc() {
        let rss = resident_bytes("/proc/self/status").expect("VmRSS of this test");
        assert!(rss > 1024 * 1024 && rss < 4 * 1024 * 1024 * 1024, "{rss}");
        assert_eq!(resident_bytes("/proc/0/none"), None);
    }

    #[test]
    fn limits_say_what_holds() {
        let limits = Limits::new(256, &format!("stream-test-{}", std::process::id()));
        let text = limits.describe();
        assert!(text.starts_with("memory 256 MB"), "{text}");
        assert!(text.contains("CPU"), "{text}");
        assert!(!limits.exceeded(Some(std::process::id())), "this test uses far less than 256 MB");
        assert!(Limits::new(1, "stream-test-tiny").exceeded(Some(std::process::id())), "but more than 1 MB");
    }
}
