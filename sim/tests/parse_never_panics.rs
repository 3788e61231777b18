//! Bad input never panics: thousands of random mutations of valid scenario files are parsed,
//! and each either loads or gives an error that names the file and a position.

use rand_xoshiro::rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use snoopsim::scenario;
use std::path::Path;

fn mutate(rng: &mut Xoshiro256PlusPlus, text: &str) -> String {
    let mut b = text.as_bytes().to_vec();
    for _ in 0..1 + rng.next_u32() % 4 {
        if b.is_empty() {
            break;
        }
        let i = rng.next_u32() as usize % b.len();
        match rng.next_u32() % 5 {
            0 => b[i] = (rng.next_u32() % 256) as u8,
            1 => {
                b.remove(i);
            }
            2 => {
                let tokens = b"{}[],:\"0-9ex";
                b.insert(i, tokens[rng.next_u32() as usize % tokens.len()]);
            }
            3 => b.truncate(i),
            _ => {
                let j = rng.next_u32() as usize % b.len();
                b.swap(i, j);
            }
        }
    }
    String::from_utf8_lossy(&b).into_owned()
}

#[test]
fn random_mutations_of_the_shipped_scenarios_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0x5ce0_a210);
    let (mut ok, mut rejected) = (0, 0);
    for _ in 0..2000 {
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            let bad = mutate(&mut rng, &text);
            match scenario::parse(Path::new("mutant.json"), &bad) {
                Ok(_) => ok += 1,
                Err(e) => {
                    rejected += 1;
                    let msg = e.to_string();
                    assert!(msg.starts_with("mutant.json"), "{msg}");
                    assert!(!e.message.is_empty());
                }
            }
        }
    }
    assert!(
        rejected > ok,
        "most mutants should be rejected ({ok} loaded, {rejected} rejected)"
    );
}
