//! Synthetic wasm modules for wedge's tests and benchmarks: ones that take
//! the compiler long, and copies of a module that differ only in a custom
//! section.

use wasm_encoder::{
    BlockType, CodeSection, CustomSection, ExportKind, ExportSection, Function, FunctionSection,
    MemorySection, MemoryType, Module, Section as _, TypeSection, ValType,
};

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
    let mut types = TypeSection::new();
    types.ty().function([], []); // () -> ()
    let mut functions = FunctionSection::new();
    let mut code = CodeSection::new();
    let mut start = Function::new([]);
    start.instructions().end();
    functions.function(0);
    code.function(&start);
    for f in 0..count {
        let target = (size - f * MAX_FUNCTION).min(MAX_FUNCTION);
        functions.function(0);
        code.function(&arithmetic(target, locals, &mut next));
    }
    let mut memories = MemorySection::new();
    memories.memory(MemoryType {
        minimum: 1,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    let mut exports = ExportSection::new();
    exports.export("_start", ExportKind::Func, 0);
    exports.export("memory", ExportKind::Memory, 0);
    let mut wasm = Module::new();
    wasm.section(&types)
        .section(&functions)
        .section(&memories)
        .section(&exports)
        .section(&code);
    wasm.finish()
}

/// One function body of about `size` bytes over `locals` i64 locals:
/// arithmetic, and a branch every 50 steps.
fn arithmetic(size: usize, locals: usize, next: &mut impl FnMut() -> usize) -> Function {
    let mut f = Function::new([(locals as u32, ValType::I64)]);
    let mut ops = 0usize;
    let local = |l: usize| l as u32;
    while f.byte_len() < size {
        let (a, b, c, d) = (next(), next(), next(), next());
        f.instructions()
            .local_get(local(a))
            .local_get(local(b))
            .i64_mul()
            .local_get(local(c))
            .i64_add()
            .local_set(local(d));
        ops += 1;
        if ops.is_multiple_of(50) {
            // if (local a == 0) { local c = local b + 1 }
            f.instructions()
                .local_get(local(a))
                .i64_eqz()
                .if_(BlockType::Empty)
                .local_get(local(b))
                .i64_const(1)
                .i64_add()
                .local_set(local(c))
                .end();
        }
    }
    f.instructions().end();
    f
}

/// `wasm` with a custom section named `wedge-test` holding `tag` and `extra`
/// filler bytes: the same code under another sha256, and as large as needed.
pub fn padded(wasm: &[u8], tag: u32, extra: usize) -> Vec<u8> {
    let mut data = tag.to_le_bytes().to_vec();
    data.resize(data.len() + extra, 0);
    let mut out = wasm.to_vec();
    CustomSection {
        name: "wedge-test".into(),
        data: data.into(),
    }
    .append_to(&mut out);
    out
}
