//! Calls the WASI functions wedge answers itself with descriptors, pointers and
//! exit codes a correct program never passes, chosen by the query string. A bad
//! descriptor is `EBADF` (8), reported in the response; a bad pointer or exit
//! code traps the guest.

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    fn fd_write(fd: i32, iovs: i32, iovs_len: i32, written: i32) -> i32;
    fn fd_read(fd: i32, iovs: i32, iovs_len: i32, read: i32) -> i32;
    fn environ_get(environ: i32, buf: i32) -> i32;
    fn args_sizes_get(count: i32, size: i32) -> i32;
    fn proc_exit(code: i32) -> !;
}

/// Far beyond any guest memory this module will have.
const WILD: i32 = -64;

fn main() {
    let text = b"unreachable";
    let iovec: [u32; 2] = [text.as_ptr() as u32, text.len() as u32];
    let wild_iovec: [u32; 2] = [WILD as u32, 16];
    let mut n: [u32; 2] = [0; 2];
    let iov = iovec.as_ptr() as i32;
    let out = n.as_mut_ptr() as i32;
    let case = std::env::var("QUERY_STRING").unwrap_or_default();
    // SAFETY: the host checks every pointer; that is what this guest tests.
    unsafe {
        match case.as_str() {
            "descriptors" => {
                let lines = [
                    ("write fd 0", fd_write(0, iov, 1, out)),
                    ("write fd 7", fd_write(7, iov, 1, out)),
                    ("read fd 1", fd_read(1, iov, 1, out)),
                    ("read fd 9", fd_read(9, iov, 1, out)),
                ];
                println!("Content-Type: text/plain\n");
                for (what, status) in lines {
                    println!("{what}: {status}");
                }
            }
            "wild-iovecs" => {
                fd_write(1, WILD, 1, out);
            }
            "wild-buffer" => {
                fd_write(1, wild_iovec.as_ptr() as i32, 1, out);
            }
            "wild-out" => {
                fd_write(1, iov, 1, WILD);
            }
            "misaligned-out" => {
                fd_write(1, iov, 1, out + 1);
            }
            "wild-environ" => {
                environ_get(WILD, WILD);
            }
            "wild-sizes" => {
                args_sizes_get(out, WILD);
            }
            "wild-stdin" => {
                fd_read(0, wild_iovec.as_ptr() as i32, 1, out);
            }
            "exit-200" => proc_exit(200),
            _ => {
                println!("Status: 400\nContent-Type: text/plain\n\nunknown case {case}");
            }
        }
    }
}
