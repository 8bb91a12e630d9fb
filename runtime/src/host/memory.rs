//! Bounds-checked access to a guest's linear memory. A bad pointer or length is
//! an `invalid` status for the guest, never a host panic or a trap.

use wasmtime::{AsContext, AsContextMut, Caller, Memory};

use crate::store::backend::KvError;

const OUT_OF_BOUNDS: KvError = KvError::Invalid("pointer or length outside guest memory");

/// The guest's exported `memory`.
pub fn memory<T>(caller: &mut Caller<'_, T>) -> Result<Memory, KvError> {
    caller
        .get_export("memory")
        .and_then(|e| e.into_memory())
        .ok_or(KvError::Invalid("the module exports no memory"))
}

/// The byte range `[ptr, ptr + len)` as host indexes, if it fits in `size`.
fn range(ptr: i32, len: i32, size: usize) -> Result<std::ops::Range<usize>, KvError> {
    // Guest pointers and lengths are unsigned 32-bit values in i32 clothing.
    let start = ptr as u32 as usize;
    let end = start
        .checked_add(len as u32 as usize)
        .ok_or(OUT_OF_BOUNDS)?;
    if end > size {
        return Err(OUT_OF_BOUNDS);
    }
    Ok(start..end)
}

/// Checks that `len` bytes at `ptr` lie inside guest memory, so an operation can
/// refuse a bad out-pointer before it changes anything.
pub fn check(mem: Memory, store: impl AsContext, ptr: i32, len: usize) -> Result<(), KvError> {
    let len = i32::try_from(len).map_err(|_| OUT_OF_BOUNDS)?;
    range(ptr, len, mem.data_size(&store)).map(|_| ())
}

/// Copies `len` bytes at `ptr` out of guest memory.
pub fn read(mem: Memory, store: impl AsContext, ptr: i32, len: i32) -> Result<Vec<u8>, KvError> {
    let data = mem.data(&store);
    Ok(data[range(ptr, len, data.len())?].to_vec())
}

/// Copies `bytes` into guest memory at `ptr`.
pub fn write(
    mem: Memory,
    mut store: impl AsContextMut,
    ptr: i32,
    bytes: &[u8],
) -> Result<(), KvError> {
    let data = mem.data_mut(&mut store);
    let len = i32::try_from(bytes.len()).map_err(|_| OUT_OF_BOUNDS)?;
    let size = data.len();
    data[range(ptr, len, size)?].copy_from_slice(bytes);
    Ok(())
}

/// The `wedge` module's rule for results of a size the guest cannot know:
/// `bytes`' length always goes to `len_out` (u32), and the bytes go to `buf`
/// only when they fit in `cap`, so a guest retries with a buffer of that
/// size. Both ranges must have been [`check`]ed before the call had effects.
pub fn write_sized(
    mem: Memory,
    mut store: impl AsContextMut,
    buf: i32,
    cap: i32,
    len_out: i32,
    bytes: &[u8],
) -> Result<(), KvError> {
    let len = u32::try_from(bytes.len()).map_err(|_| KvError::TooLarge)?;
    write(mem, &mut store, len_out, &len.to_le_bytes())?;
    if bytes.len() <= cap as u32 as usize {
        write(mem, &mut store, buf, bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn ranges_are_checked() {
        assert_eq!(range(0, 4, 4).unwrap(), 0..4);
        assert!(range(1, 4, 4).is_err());
        assert!(
            range(-1, 1, 1 << 16).is_err(),
            "a negative pointer is a huge one"
        );
        assert!(
            range(16, -1, 1 << 16).is_err(),
            "a negative length is a huge one"
        );
        assert_eq!(range(65536, 0, 65536).unwrap(), 65536..65536);
    }
}
