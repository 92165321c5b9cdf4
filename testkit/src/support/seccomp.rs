//! A seccomp filter that answers every `flock(2)` system call with an errno: what a file
//! system without `flock` does, seen from any code, a statically linked binary included.

use nix::errno::Errno;

/// The audit architecture of this target's system calls.
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
const ARCH: Option<u32> = Some(0xc000_003e); // AUDIT_ARCH_X86_64
#[cfg(all(target_os = "linux", target_arch = "aarch64"))]
const ARCH: Option<u32> = Some(0xc000_00b7); // AUDIT_ARCH_AARCH64
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
const ARCH: Option<u32> = None;

/// Whether [`deny_flock`] works here, or why not.
pub fn supported() -> Result<(), String> {
    match ARCH {
        Some(_) => Ok(()),
        None => Err("the filter is written for Linux on x86_64 and aarch64".into()),
    }
}

/// Installs the filter in this process, for good (it is inherited by children and across
/// `exec`): every later `flock` fails with `errno`. Calls only `prctl(2)`, which is
/// async-signal-safe, so a forked child or `CommandExt::pre_exec` may call it. Check
/// [`supported`] first.
#[cfg(target_os = "linux")]
pub fn deny_flock(errno: Errno) -> std::io::Result<()> {
    // Classic BPF over struct seccomp_data { int nr; u32 arch; ... }.
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    let ins = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let arch = ARCH.expect("checked by supported()");
    let nr = u32::try_from(libc::SYS_flock).unwrap();
    let ret_errno = libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA);
    let filter = [
        ins(LD_W_ABS, 0, 0, 4),
        ins(JEQ_K, 1, 0, arch),
        ins(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
        ins(LD_W_ABS, 0, 0, 0),
        ins(JEQ_K, 0, 1, nr),
        ins(RET_K, 0, 0, ret_errno),
        ins(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: prctl takes integers and, for PR_SET_SECCOMP, a pointer to `prog`, which
    // (with `filter`) outlives the call; the kernel copies the program.
    let failed = unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
            ) != 0
    };
    if failed {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Not available: [`supported`] says why.
#[cfg(not(target_os = "linux"))]
pub fn deny_flock(_errno: Errno) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}
