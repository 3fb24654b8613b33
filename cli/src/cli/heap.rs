//! The binary's heap settings: keep freed memory in the process between denoising steps.
//!
//! glibc's malloc hands large blocks (over its adaptive mmap threshold) and the free top of the
//! heap back to the kernel as soon as they are freed, so every step maps its activations afresh
//! and the kernel zeroes each page on first touch. On the seeded default model that was 554k
//! page faults and a third of a second of system time per `cachedit bench --only ...` run, and
//! 6.1 s of system time in two steps of the large one; keeping the memory cut the faults to 21k
//! and the default model's baseline CPU time by about a fifth (BENCHMARKS.md). The library
//! never picks an allocator; the `cachedit` binary, which runs one generation loop, does.

/// Sets glibc's malloc to keep freed memory mapped (fixed 32 MiB mmap threshold, no trimming
/// below 2 GiB of free heap top, 256 MiB of padding per heap extension). Nothing on other C
/// libraries, or when the user set `GLIBC_TUNABLES`, which then decides.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("GLIBC_TUNABLES").is_some() {
            tracing::debug!("GLIBC_TUNABLES is set: malloc left as configured");
            return;
        }
        let settings = [
            (libc::M_MMAP_THRESHOLD, 32 << 20, "M_MMAP_THRESHOLD"),
            (libc::M_TRIM_THRESHOLD, libc::c_int::MAX, "M_TRIM_THRESHOLD"),
            (libc::M_TOP_PAD, 256 << 20, "M_TOP_PAD"),
        ];
        for (param, value, name) in settings {
            // SAFETY: `mallopt` only sets a malloc parameter under glibc's own lock; it is
            // called at start-up, and a rejected value (return 0) leaves the default in place.
            #[allow(unsafe_code)]
            let ok = unsafe { libc::mallopt(param, value) } == 1;
            if !ok {
                tracing::warn!(setting = name, value, "glibc rejected a malloc setting");
            }
        }
    }
}
