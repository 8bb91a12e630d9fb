//! Fewer data segments. wasmtime walks every data segment of a module each
//! time it instantiates it, and Go's linker emits one per symbol: 51,553 in
//! a 5 MB Go hello, plus as many passive empty ones in its wizer snapshot,
//! which kept their indices. Instantiating that snapshot took about 90 µs, the
//! whole cost of instantiation, against 1 µs for a Rust hello.
//!
//! [`compact`] rewrites a module's data section into one active segment per
//! run of initialized memory (segments at most [`GAP`] bytes apart join up,
//! zeros between them) and drops passive segments. Instantiation writes the
//! same bytes as before. A module whose code uses `memory.init` or
//! `data.drop` (which name segments by index), or whose segments sit at an
//! offset that is not a constant, is left as it is.

use std::collections::BTreeMap;

use wasm_encoder::{ConstExpr, DataCountSection, DataSection, Module, RawSection};
use wasmparser::{BinaryReaderError, DataKind, Encoding, Operator, Parser, Payload, TypeRef};

/// Segments closer than this join into one, with zeros between them.
pub const GAP: u64 = 4096;

/// Below this many segments a module is left as it is.
const WORTH_IT: usize = 64;

/// The section ids this rewrites.
const DATA_SECTION: u8 = 11;
const DATA_COUNT_SECTION: u8 = 12;

/// One active segment.
struct Segment<'a> {
    offset: u64,
    data: &'a [u8],
}

/// `wasm` with its data segments compacted, or `None` when there is nothing
/// to gain or it cannot be done without changing what the module does.
pub fn compact(wasm: &[u8]) -> Result<Option<Vec<u8>>, BinaryReaderError> {
    // Per memory: whether it is 64-bit, and its active segments in order.
    let mut memories: Vec<bool> = Vec::new();
    let mut active: BTreeMap<u32, Vec<Segment<'_>>> = BTreeMap::new();
    let mut segments = 0usize;
    let mut bodies = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::Version { encoding, .. } if encoding != Encoding::Module => return Ok(None),
            Payload::ImportSection(section) => {
                for import in section.into_imports() {
                    if let TypeRef::Memory(m) = import?.ty {
                        memories.push(m.memory64);
                    }
                }
            }
            Payload::MemorySection(section) => {
                for memory in section {
                    memories.push(memory?.memory64);
                }
            }
            Payload::DataSection(section) => {
                for data in section {
                    let data = data?;
                    segments += 1;
                    let DataKind::Active {
                        memory_index,
                        offset_expr,
                    } = data.kind
                    else {
                        continue;
                    };
                    let mut ops = offset_expr.get_operators_reader();
                    let offset = match ops.read()? {
                        Operator::I32Const { value } => u64::from(value as u32),
                        Operator::I64Const { value } => value as u64,
                        _ => return Ok(None),
                    };
                    if !matches!(ops.read()?, Operator::End) {
                        return Ok(None);
                    }
                    active.entry(memory_index).or_default().push(Segment {
                        offset,
                        data: data.data,
                    });
                }
            }
            Payload::CodeSectionEntry(body) => bodies.push(body),
            _ => {}
        }
    }
    if segments <= WORTH_IT {
        return Ok(None);
    }
    // Read the code only for a module worth compacting: most have few
    // segments, and a snapshot compacted once is read again when its
    // optimized code is compiled.
    for body in bodies {
        let mut ops = body.get_operators_reader()?;
        while !ops.eof() {
            if matches!(
                ops.read()?,
                Operator::MemoryInit { .. } | Operator::DataDrop { .. }
            ) {
                return Ok(None);
            }
        }
    }

    let mut runs = Vec::new();
    for (memory, segments) in &active {
        let memory64 = memories.get(*memory as usize).copied().unwrap_or(false);
        for (offset, bytes) in join(segments) {
            runs.push((*memory, memory64, offset, bytes));
        }
    }
    let mut data = DataSection::new();
    for (memory, memory64, offset, bytes) in &runs {
        let offset = match memory64 {
            false => ConstExpr::i32_const(*offset as u32 as i32),
            true => ConstExpr::i64_const(*offset as i64),
        };
        data.active(*memory, &offset, bytes.iter().copied());
    }
    let count = DataCountSection {
        count: runs.len() as u32,
    };
    // Every other section is copied as it is, in its place.
    let mut out = Module::new();
    for payload in Parser::new(0).parse_all(wasm) {
        let Some((id, range)) = payload?.as_section() else {
            continue;
        };
        match id {
            DATA_SECTION => out.section(&data),
            DATA_COUNT_SECTION => out.section(&count),
            _ => out.section(&RawSection {
                id,
                data: &wasm[range],
            }),
        };
    }
    Ok(Some(out.finish()))
}

/// The runs of one memory's segments: (offset, bytes), each segment written
/// over the run in its original order so a later segment still wins where
/// two overlap.
fn join(segments: &[Segment<'_>]) -> Vec<(u64, Vec<u8>)> {
    let mut order: Vec<usize> = (0..segments.len()).collect();
    order.sort_by_key(|&i| segments[i].offset);
    let mut groups: Vec<(u64, u64, Vec<usize>)> = Vec::new();
    for i in order {
        let s = &segments[i];
        let end = s.offset.saturating_add(s.data.len() as u64);
        match groups.last_mut() {
            Some((_, group_end, members)) if s.offset <= group_end.saturating_add(GAP) => {
                *group_end = (*group_end).max(end);
                members.push(i);
            }
            _ => groups.push((s.offset, end, vec![i])),
        }
    }
    groups
        .into_iter()
        .map(|(start, end, mut members)| {
            members.sort_unstable();
            let mut bytes = vec![0u8; (end - start) as usize];
            for i in members {
                let s = &segments[i];
                let at = (s.offset - start) as usize;
                bytes[at..at + s.data.len()].copy_from_slice(s.data);
            }
            (start, bytes)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module with one exported memory of a page and `segments` as its
    /// data section: active ones at their offset, passive ones without.
    fn module(segments: &[(Option<u32>, &[u8])]) -> Vec<u8> {
        let mut memories = wasm_encoder::MemorySection::new();
        memories.memory(wasm_encoder::MemoryType {
            minimum: 1,
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
        let mut exports = wasm_encoder::ExportSection::new();
        exports.export("memory", wasm_encoder::ExportKind::Memory, 0);
        let mut data = DataSection::new();
        for (offset, bytes) in segments {
            match offset {
                Some(offset) => data.active(
                    0,
                    &ConstExpr::i32_const(*offset as i32),
                    bytes.iter().copied(),
                ),
                None => data.passive(bytes.iter().copied()),
            };
        }
        let mut wasm = Module::new();
        wasm.section(&memories).section(&exports).section(&data);
        wasm.finish()
    }

    /// The memory a module starts with, as wasmtime lays it out.
    fn initial_memory(wasm: &[u8]) -> Vec<u8> {
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, wasm).unwrap();
        let mut store = wasmtime::Store::new(&engine, ());
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
        let memory = instance.get_memory(&mut store, "memory").unwrap();
        memory.data(&store).to_vec()
    }

    #[test]
    fn compacted_modules_start_with_the_same_memory() {
        // Many small segments, some near, some far, two overlapping (the
        // later must win), and passive ones among them.
        let mut segments: Vec<(Option<u32>, Vec<u8>)> = Vec::new();
        for i in 0..100u32 {
            segments.push((Some(i * 300), vec![i as u8 + 1; 7]));
        }
        segments.push((Some(20_000), b"first".to_vec()));
        segments.push((None, b"passive".to_vec()));
        segments.push((Some(20_002), b"SECOND".to_vec()));
        segments.push((Some(60_000), b"far".to_vec()));
        let segments: Vec<(Option<u32>, &[u8])> =
            segments.iter().map(|(o, d)| (*o, d.as_slice())).collect();
        let original = module(&segments);
        let compacted = compact(&original).unwrap().expect("worth compacting");
        assert_eq!(initial_memory(&compacted), initial_memory(&original));
        let count = Parser::new(0)
            .parse_all(&compacted)
            .find_map(|p| match p.unwrap() {
                Payload::DataSection(s) => Some(s.count()),
                _ => None,
            })
            .unwrap();
        assert_eq!(count, 2, "the near ones with 20,000 among them, and 60,000");
    }

    #[test]
    fn few_segments_are_left_alone() {
        let original = module(&[(Some(0), b"a"), (Some(10), b"b")]);
        assert!(compact(&original).unwrap().is_none());
    }
}
