//! The MESI table, printed (run with `--nocapture` to see it) and spot-checked.

use cache::mesi::{table_text, transition, Action, Event, LineState};

#[test]
fn print_the_mesi_table() {
    let text = table_text();
    println!("{text}");
    assert!(text.contains("M      Inv         I      [SendData, Deallocate]"));
    assert!(text.contains("I      FwdGetS     -      (impossible)"));
}

#[test]
fn a_write_to_a_shared_line_upgrades_and_an_exclusive_one_upgrades_silently() {
    let s = transition(LineState::S, Event::Store).unwrap();
    assert_eq!(
        (s.next, s.actions),
        (LineState::SmA, &[Action::IssueUpgrade][..])
    );
    let e = transition(LineState::E, Event::Store).unwrap();
    assert_eq!(e.next, LineState::M);
    assert!(!e.actions.contains(&Action::IssueUpgrade));
}

#[test]
fn clwb_leaves_a_clean_exclusive_copy_and_clflush_leaves_none() {
    assert_eq!(
        transition(LineState::M, Event::Clean).unwrap().next,
        LineState::E
    );
    assert_eq!(
        transition(LineState::M, Event::Flush).unwrap().next,
        LineState::I
    );
}
