//! Calls every function of the `wedge` module with pointers, lengths and handles
//! outside its memory, and prints the status each returns. The host must answer
//! `invalid` (5) every time and stay up.

#[link(wasm_import_module = "wedge")]
unsafe extern "C" {
    fn kv_open(name: i32, name_len: i32, handle: i32) -> i32;
    fn kv_get(h: i32, key: i32, key_len: i32, buf: i32, cap: i32, len: i32) -> i32;
    fn kv_exists(h: i32, key: i32, key_len: i32) -> i32;
    fn kv_list(
        h: i32,
        prefix: i32,
        prefix_len: i32,
        after: i32,
        after_len: i32,
        buf: i32,
        cap: i32,
        out: i32,
    ) -> i32;
    fn kv_set(h: i32, key: i32, key_len: i32, value: i32, value_len: i32) -> i32;
    fn kv_delete(h: i32, key: i32, key_len: i32) -> i32;
    fn kv_add(h: i32, key: i32, key_len: i32, delta: i64, min: i64, max: i64, value: i32) -> i32;
    fn kv_cas(
        h: i32,
        key: i32,
        key_len: i32,
        exp: i32,
        exp_len: i32,
        new: i32,
        new_len: i32,
        swapped: i32,
    ) -> i32;
}

/// Far beyond any guest memory this module will have.
const WILD: i32 = -64;

fn main() {
    let name = b"abuse";
    let key = b"k";
    let mut handle: u32 = 0;
    let (np, kp) = (name.as_ptr() as i32, key.as_ptr() as i32);
    let hp = &mut handle as *mut u32 as i32;
    let mut results = Vec::new();
    // SAFETY: the host checks every pointer; that is what this guest tests.
    unsafe {
        results.push(("open wild name", kv_open(WILD, 5, hp)));
        results.push(("open negative length", kv_open(np, -1, hp)));
        results.push(("open wild out", kv_open(np, 5, WILD)));
        assert_eq!(kv_open(np, 5, hp), 0, "a good open works");
        let h = handle as i32;
        results.push(("get unknown handle", kv_get(999, kp, 1, 0, 0, 0)));
        results.push(("get negative handle", kv_get(-1, kp, 1, 0, 0, 0)));
        results.push(("get wild key", kv_get(h, WILD, 8, 0, 0, 0)));
        results.push(("set wild value", kv_set(h, kp, 1, WILD, 100)));
        results.push(("set huge length", kv_set(h, kp, 1, 0, i32::MAX)));
        assert_eq!(kv_set(h, kp, 1, kp, 1), 0, "a good set works");
        results.push(("get wild out", kv_get(h, kp, 1, 0, 0, WILD)));
        results.push(("get wild buffer", kv_get(h, kp, 1, WILD, 16, hp)));
        results.push(("exists wild key", kv_exists(h, WILD, 1)));
        results.push(("list wild out", kv_list(h, kp, 1, 0, 0, 0, 0, WILD)));
        results.push(("list wild buffer", kv_list(h, kp, 1, 0, 0, WILD, 64, hp)));
        results.push(("delete wild key", kv_delete(h, WILD, 1)));
        let counter = b"n";
        let seven = b"7";
        let np = counter.as_ptr() as i32;
        assert_eq!(kv_set(h, np, 1, seven.as_ptr() as i32, 1), 0);
        results.push(("add wild out", kv_add(h, np, 1, 1, 0, 10, WILD)));
        results.push(("cas wild expected", kv_cas(h, kp, 1, WILD, 4, kp, 1, hp)));
        results.push(("cas wild out", kv_cas(h, kp, 1, 0, -1, kp, 1, WILD)));
    }
    // The refused add must have left the counter alone.
    let mut buf = [0u8; 16];
    let mut len: u32 = 0;
    // SAFETY: the pointers cover `buf` and `len`.
    let status = unsafe {
        kv_get(
            handle as i32,
            b"n".as_ptr() as i32,
            1,
            buf.as_mut_ptr() as i32,
            16,
            &mut len as *mut u32 as i32,
        )
    };
    println!("Content-Type: text/plain\n");
    for (what, status) in results {
        println!("{what}: {status}");
    }
    println!(
        "counter after refused add: {status} {}",
        String::from_utf8_lossy(&buf[..len as usize])
    );
}
