//! `cargo xtask bench`'s options and scenarios, read as before the bench
//! was split one file per scenario.

use super::*;

fn args(text: &str) -> Vec<String> {
    text.split_whitespace().map(String::from).collect()
}

#[test]
fn without_arguments_hello_runs_with_the_defaults() {
    let o = parse_options(&[]).unwrap();
    assert_eq!(o.scenario, "hello");
    assert_eq!(
        o.load,
        Load {
            duration: "10s".into(),
            connections: "32".into(),
            threads: "2".into(),
        }
    );
    assert_eq!((o.rounds, o.baseline), (3, None));
}

#[test]
fn deploy_and_components_have_rounds_of_their_own_unless_given() {
    assert_eq!(parse_options(&args("deploy")).unwrap().rounds, 20);
    assert_eq!(parse_options(&args("components")).unwrap().rounds, 5);
    let o = parse_options(&args("components --rounds 7 --duration 3s --threads 1")).unwrap();
    assert_eq!(
        (o.rounds, o.load.duration, o.load.threads),
        (7, "3s".into(), "1".into())
    );
    let o = parse_options(&args("--connections 8")).unwrap();
    assert_eq!(
        (o.scenario, o.load.connections),
        ("hello".into(), "8".into())
    );
}

#[test]
fn bad_options_are_named() {
    let err = |text| parse_options(&args(text)).unwrap_err();
    assert_eq!(err("--bogus x"), "unknown option --bogus");
    assert_eq!(err("hello extra y"), "unknown option extra");
    assert_eq!(err("--duration"), "--duration needs a value");
    assert_eq!(err("--rounds 0"), "--rounds needs a positive count, not 0");
    assert_eq!(
        err("--rounds abc"),
        "--rounds needs a positive count, not abc"
    );
    assert_eq!(
        err("--baseline /no/such/wedge"),
        "--baseline /no/such/wedge: no such wedge binary"
    );
}

#[test]
fn each_name_stands_for_its_scenarios_in_order() {
    assert_eq!(scenarios("fleet"), Ok(&["fleet"][..]));
    assert_eq!(scenarios("speed"), Ok(&["hello", "golive"][..]));
    assert_eq!(scenarios("all"), Ok(ALL));
    assert_eq!(
        scenarios("nosuch"),
        Err("unknown scenario nosuch (hello, components, inventory, fifty, fleet, origin, golive, speed, all, deploy, swaps, stream)".into())
    );
}
