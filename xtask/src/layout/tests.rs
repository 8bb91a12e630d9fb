//! `cargo xtask layout` on small crates written for each test, and on xtask
//! itself.

use super::*;

fn crate_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// Three modules in two layers: `a` on top, `b` and `c` below it.
const LIB: &str = "//! A crate.\n//!\n//! # Layout\n//!\n\
                   //! - [`a`]: the top.\n//! - [`b`], [`c`]: below [`a`].\n\n\
                   pub mod a;\npub mod b;\nmod c;\n";

#[test]
fn a_cycle_through_a_submodule_is_named_with_where_it_starts() {
    let dir = crate_with(&[
        ("lib.rs", LIB),
        ("a.rs", "use crate::b::Thing;\n"),
        ("b/mod.rs", "mod inner;\n"),
        ("b/inner.rs", "fn f() { super::super::c::g() }\n"),
        ("c.rs", "use crate::{\n    a::X,\n};\n"),
    ]);
    let err = check(dir.path(), "lib.rs").unwrap_err();
    assert!(err.contains("modules in one cycle: a, b, c"), "{err}");
    assert!(err.contains("for one: a → b → c → a"), "{err}");
    assert!(err.contains("b → c in b/inner.rs"), "{err}");
    assert!(err.contains("c → a in c.rs"), "{err}");
}

#[test]
fn comments_strings_tests_and_inner_paths_are_not_uses() {
    let dir = crate_with(&[
        ("lib.rs", LIB),
        ("a.rs", "use crate::b::Thing;\nuse super::c as _;\n"),
        (
            "b.rs",
            "//! See [`crate::a`].\nconst S: &str = \"crate::a\";\nuse self::x::super::a;\n\
             #[cfg(test)]\nmod tests { use crate::a::X; }\n",
        ),
        ("c.rs", "// crate::a\n"),
    ]);
    assert_eq!(check(dir.path(), "lib.rs"), Ok(()));
}

#[test]
fn a_test_module_in_a_file_of_its_own_is_not_a_use() {
    let dir = crate_with(&[
        ("lib.rs", LIB),
        ("a.rs", ""),
        ("b/mod.rs", "#[cfg(test)]\nmod tests;\n"),
        ("b/tests.rs", "use crate::a::Top;\n"),
        ("c.rs", ""),
    ]);
    assert_eq!(check(dir.path(), "lib.rs"), Ok(()));
}

#[test]
fn a_module_missing_from_the_layout_section_is_named() {
    let lib = LIB.replace("[`c`]", "c");
    let dir = crate_with(&[("lib.rs", &lib), ("a.rs", ""), ("b.rs", ""), ("c.rs", "")]);
    let err = check(dir.path(), "lib.rs").unwrap_err();
    assert!(err.contains("does not name module `c`"), "{err}");
}

#[test]
fn a_module_in_two_layers_is_named() {
    let lib = LIB.replace("[`a`]: the top.", "[`a`], [`c`]: the top.");
    let dir = crate_with(&[("lib.rs", &lib), ("a.rs", ""), ("b.rs", ""), ("c.rs", "")]);
    let err = check(dir.path(), "lib.rs").unwrap_err();
    assert_eq!(
        err,
        "lib.rs's Layout section puts module `c` in more than one layer"
    );
}

#[test]
fn an_upward_use_names_both_modules_the_direction_and_the_file() {
    let lib = "//! # Layout\n//!\n//! - [`request`]: the request path.\n\
               //! - [`store`]: the stores.\n\npub mod request;\npub mod store;\n";
    let dir = crate_with(&[
        ("lib.rs", lib),
        ("request.rs", ""),
        ("store/mod.rs", "mod host;\n"),
        ("store/host.rs", "fn f() { crate::request::handle() }\n"),
    ]);
    let err = check(dir.path(), "lib.rs").unwrap_err();
    assert_eq!(
        err,
        "upward use: store → request in store/host.rs (request is in a higher layer than store)"
    );
}

#[test]
fn a_cycle_inside_a_folder_names_the_folder_the_modules_and_the_files() {
    let lib = "//! # Layout\n//!\n//! - [`x`]: one folder.\n\nmod x;\n";
    let dir = crate_with(&[
        ("lib.rs", lib),
        ("x/mod.rs", "mod a;\nmod b;\npub use self::a::A;\n"),
        ("x/a.rs", "use super::b::B;\n"),
        ("x/b.rs", "fn f() { crate::x::a::g() }\n"),
    ]);
    let err = check(dir.path(), "lib.rs").unwrap_err();
    assert!(
        err.contains("modules in one cycle inside x/: a, b"),
        "{err}"
    );
    assert!(err.contains("for one: a → b → a"), "{err}");
    assert!(err.contains("a → b in x/a.rs"), "{err}");
    assert!(err.contains("b → a in x/b.rs"), "{err}");
}

#[test]
fn a_cycle_in_a_deeper_folder_is_found_from_the_files_below_each_module() {
    let lib = "//! # Layout\n//!\n//! - [`x`]: one folder.\n\nmod x;\n";
    let dir = crate_with(&[
        ("lib.rs", lib),
        ("x/mod.rs", "mod y;\n"),
        ("x/y/mod.rs", "mod c;\nmod d;\n"),
        ("x/y/c.rs", "use crate::x::y::{d::D, c::C};\n"),
        ("x/y/d/mod.rs", "mod inner;\n"),
        ("x/y/d/inner.rs", "use super::super::c::C;\n"),
    ]);
    let err = check(dir.path(), "lib.rs").unwrap_err();
    assert!(
        err.contains("modules in one cycle inside x/y/: c, d"),
        "{err}"
    );
    assert!(err.contains("c → d in x/y/c.rs"), "{err}");
    assert!(err.contains("d → c in x/y/d/inner.rs"), "{err}");
}

#[test]
fn a_stale_layout_name_is_named() {
    let lib = "//! # Layout\n//!\n\
               //! - [`a`]: holds [`a::here`] (not [`a::gone`]), [`Item`], [`a::Thing`].\n\
               //!   - [`nowhere`] in a sub-bullet.\n\nmod a;\n";
    let dir = crate_with(&[
        ("lib.rs", lib),
        ("a/mod.rs", "mod here;\n"),
        ("a/here.rs", ""),
    ]);
    let err = check(dir.path(), "lib.rs").unwrap_err();
    assert_eq!(
        err,
        "lib.rs's Layout section names `a::gone`, which is not a module\n\
         lib.rs's Layout section names `nowhere`, which is not a module"
    );
}

#[test]
fn a_layered_crate_with_same_layer_and_downward_uses_passes() {
    let lib = "//! A crate.\n//!\n//! # Layout\n//!\n//! Top layer first.\n//!\n\
               //! - [`app`]: the top, its routes in [`app::routes`].\n\
               //!   - [`util`] in a sub-bullet declares nothing.\n\
               //! - [`store`], [`cache`]: the middle layer, on two\n\
               //!   lines: [`crate::store`].\n\
               //! - [`util`]: the bottom.\n//!\n//! # Next\n\n\
               pub mod app;\nmod cache;\nmod store;\nmod util;\n";
    let dir = crate_with(&[
        ("lib.rs", lib),
        ("app/mod.rs", "mod routes;\npub use self::routes::R;\n"),
        (
            "app/routes.rs",
            "use crate::store::Db;\nfn f() { super::super::util::f() }\n",
        ),
        ("store.rs", "use crate::{cache::C, util::g};\n"),
        ("cache.rs", "use super::util::h;\n"),
        ("util.rs", ""),
    ]);
    assert_eq!(check(dir.path(), "lib.rs"), Ok(()));
}

#[test]
fn xtask_is_layered_without_a_cycle() {
    assert_eq!(check(&crate::root().join("xtask/src"), "main.rs"), Ok(()));
}

#[test]
fn the_runtime_is_layered_without_a_cycle() {
    assert_eq!(check_runtime(), Ok(()));
}
