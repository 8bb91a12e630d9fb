//! Opens the store named by `?store=`, then sets, reads, counts and lists a key,
//! reporting each step's outcome as a line of text.

use wedge_sdk::kv::Store;
use wedge_sdk::{Request, Response};

fn main() {
    wedge_sdk::serve(|req: Request| {
        let name = req.query_param("store").unwrap_or_default();
        let store = match Store::open(&name) {
            Ok(s) => s,
            Err(e) => return Response::text(200, format!("open {name}: {e:?}\n")),
        };
        let mut out = format!("open {name}: ok\n");
        out += &format!("set: {:?}\n", store.set("greeting", "hello"));
        out += &format!(
            "get: {:?}\n",
            store.get("greeting").map(|v| v.map(String::from_utf8))
        );
        out += &format!("missing: {:?}\n", store.get("nope"));
        out += &format!("exists: {:?}\n", store.exists("greeting"));
        out += &format!("add: {:?}\n", store.add("n", 5, 0, 10));
        out += &format!("add over: {:?}\n", store.add("n", 6, 0, 10));
        out += &format!("cas absent: {:?}\n", store.compare_and_swap("c", None, "1"));
        out += &format!(
            "cas wrong: {:?}\n",
            store.compare_and_swap("c", Some(b"2"), "3")
        );
        out += &format!(
            "big value: {:?}\n",
            store.set("big", vec![0u8; (1 << 20) + 1])
        );
        out += &format!("empty key: {:?}\n", store.set("", "x"));
        for i in 0..3 {
            let _ = store.set(format!("list/{i}"), "x");
        }
        let keys = store
            .list("list/")
            .map(|ks| ks.into_iter().map(String::from_utf8).collect::<Vec<_>>());
        out += &format!("list: {keys:?}\n");
        out += &format!("delete: {:?}\n", store.delete("greeting"));
        out += &format!("delete again: {:?}\n", store.delete("greeting"));
        out += &format!("abi: {:?}\n", wedge_sdk::kv::abi_version());
        Response::text(200, out)
    });
}
