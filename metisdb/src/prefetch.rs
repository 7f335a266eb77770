//! Cache-line prefetch hints.

/// Asks the CPU for every cache line of `bytes` (a page about to be read
/// through): the misses then overlap instead of coming one after another.
/// A hint only; nothing on targets without one.
pub(crate) fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: a prefetch is a hint that never faults or writes; the
        // address is inside the slice.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr().cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// [`prefetch`] of the cache line holding `value`.
pub(crate) fn prefetch_line<T>(value: &T) {
    // SAFETY: `value` is a live reference, so its first byte is readable
    // and the slice covers exactly that byte.
    let first = unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), 1) };
    prefetch(first);
}
