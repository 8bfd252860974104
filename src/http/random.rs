//! Randomness from the kernel and hex text: tokens, session ids, keys.

use std::io;

/// `bytes` random bytes from the kernel.
pub fn random_bytes(bytes: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; bytes];
    let mut filled = 0;
    while filled < bytes {
        // SAFETY: the pointer and length describe the unfilled part of `buf`.
        let n = unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), bytes - filled, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
            continue;
        }
        filled += n as usize;
    }
    Ok(buf)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `bytes` random bytes from the kernel, as lower-case hex.
pub fn random_hex(bytes: usize) -> io::Result<String> {
    random_bytes(bytes).map(|b| hex(&b))
}
