//! Synthetic wasm modules for wedge's tests and benchmarks: ones that take
//! the compiler long, and copies of a module that differ only in a custom
//! section.

fn leb(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn section(id: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.push(id);
    leb(payload.len(), out);
    out.extend_from_slice(payload);
}

/// Most code in one generated function.
const MAX_FUNCTION: usize = 1 << 20;

/// A valid WASI command (an empty `_start` and a memory) with about `size`
/// bytes of code in functions of at most 1 MiB, each over `locals` i64
/// locals: straight arithmetic between random locals, with a branch every so
/// often. Cranelift's register allocator takes seconds over a few hundred KiB
/// of one such function; its time grows with `size` and `locals`.
pub fn slow_to_compile(size: usize, locals: usize) -> Vec<u8> {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % locals as u64) as usize
    };
    let count = size.div_ceil(MAX_FUNCTION).max(1);
    let mut bodies = Vec::new();
    leb(count + 1, &mut bodies);
    bodies.extend_from_slice(&[2, 0, 0x0b]); // `_start`: no locals, end
    for f in 0..count {
        let target = (size - f * MAX_FUNCTION).min(MAX_FUNCTION);
        let code = arithmetic(target, locals, &mut next);
        leb(code.len(), &mut bodies);
        bodies.extend_from_slice(&code);
    }

    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    section(1, &[1, 0x60, 0, 0], &mut wasm); // one type: () -> ()
    let mut functions = Vec::new();
    leb(count + 1, &mut functions);
    functions.resize(functions.len() + count + 1, 0); // all of that type
    section(3, &functions, &mut wasm);
    section(5, &[1, 0, 1], &mut wasm); // one memory, one page
    let mut exports = vec![2, 6];
    exports.extend_from_slice(b"_start");
    exports.extend_from_slice(&[0x00, 0, 6]);
    exports.extend_from_slice(b"memory");
    exports.extend_from_slice(&[0x02, 0]);
    section(7, &exports, &mut wasm);
    section(10, &bodies, &mut wasm);
    wasm
}

/// One function body of about `size` bytes: locals, arithmetic, `end`.
fn arithmetic(size: usize, locals: usize, next: &mut impl FnMut() -> usize) -> Vec<u8> {
    let mut code = Vec::with_capacity(size + 64);
    leb(1, &mut code);
    leb(locals, &mut code);
    code.push(0x7e); // i64
    let mut ops = 0usize;
    while code.len() < size {
        let (a, b, c, d) = (next(), next(), next(), next());
        for (op, local) in [(0x20, a), (0x20, b)] {
            code.push(op);
            leb(local, &mut code);
        }
        code.push(0x7e); // i64.mul
        code.push(0x20);
        leb(c, &mut code);
        code.push(0x7c); // i64.add
        code.push(0x21);
        leb(d, &mut code);
        ops += 1;
        if ops.is_multiple_of(50) {
            // if (local a == 0) { local c = local b + 1 }
            code.push(0x20);
            leb(a, &mut code);
            code.extend_from_slice(&[0x50, 0x04, 0x40, 0x20]);
            leb(b, &mut code);
            code.extend_from_slice(&[0x42, 0x01, 0x7c, 0x21]);
            leb(c, &mut code);
            code.push(0x0b);
        }
    }
    code.push(0x0b); // end
    code
}

/// `wasm` with a custom section named `wedge-test` holding `tag` and `extra`
/// filler bytes: the same code under another sha256, and as large as needed.
pub fn padded(wasm: &[u8], tag: u32, extra: usize) -> Vec<u8> {
    let mut payload = Vec::new();
    leb(10, &mut payload);
    payload.extend_from_slice(b"wedge-test");
    payload.extend_from_slice(&tag.to_le_bytes());
    payload.resize(payload.len() + extra, 0);
    let mut out = wasm.to_vec();
    section(0, &payload, &mut out);
    out
}
