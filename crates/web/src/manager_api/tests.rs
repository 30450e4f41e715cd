use super::actor_name;

#[test]
fn a_token_call_names_the_person_in_x_actor() {
    assert_eq!(actor_name("cli-token", None), "cli-token");
    assert_eq!(actor_name("cli-token", Some("  ")), "cli-token");
    assert_eq!(actor_name("cli-token", Some("cli-token")), "cli-token");
    assert_eq!(actor_name("cli-token", Some(" alice ")), "alice via cli-token");
    assert_eq!(actor_name("t", Some("bob\u{7}\n")), "bob via t");
    assert_eq!(actor_name("t", Some(&"x".repeat(100))), format!("{} via t", "x".repeat(64)));
}
