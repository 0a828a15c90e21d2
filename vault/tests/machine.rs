//! Sealing a set of secrets to a machine's ephemeral key (HPKE).

use murmur_vault::{
    Error, MachineKey, MachinePublicKey, SealedSecrets, SecretSet, SecretValue, seal_to,
};

fn secrets() -> SecretSet {
    let mut set = SecretSet::new();
    for (name, value) in [
        ("GITHUB_TOKEN", "ghp_marker"),
        ("ANTHROPIC_API_KEY", "sk-marker"),
    ] {
        set.insert(name, SecretValue::new(value.as_bytes().to_vec()))
            .expect("insert");
    }
    set
}

#[test]
fn only_the_machine_opens_what_was_sealed_to_its_published_key() {
    let machine = MachineKey::generate();
    let published = machine.public().to_base64();
    let public = MachinePublicKey::from_base64(&published).expect("parse");
    let sealed = seal_to(&public, &secrets(), b"attempt run-1/a/1").expect("seal");
    let wire = sealed.to_bytes();
    for marker in [&b"ghp_marker"[..], b"sk-marker", b"GITHUB_TOKEN"] {
        assert!(
            !wire.windows(marker.len()).any(|w| w == marker),
            "sealed text leaks"
        );
    }
    let received = SealedSecrets::from_bytes(&wire).expect("parse");
    let opened = machine.open(&received, b"attempt run-1/a/1").expect("open");
    assert_eq!(opened, secrets());
}

#[test]
fn another_machine_another_purpose_or_a_changed_byte_does_not_open() {
    let machine = MachineKey::generate();
    let sealed = seal_to(&machine.public(), &secrets(), b"attempt 1").expect("seal");
    let stranger = MachineKey::generate();
    assert!(matches!(
        stranger.open(&sealed, b"attempt 1"),
        Err(Error::Open)
    ));
    assert!(matches!(
        machine.open(&sealed, b"attempt 2"),
        Err(Error::Open)
    ));
    let wire = sealed.to_bytes();
    for index in 0..wire.len() {
        let mut tampered = wire.clone();
        tampered[index] ^= 1;
        let tampered = SealedSecrets::from_bytes(&tampered).expect("parse");
        assert!(
            machine.open(&tampered, b"attempt 1").is_err(),
            "byte {index}"
        );
    }
    assert!(SealedSecrets::from_bytes(&wire[..10]).is_err());
}

#[test]
fn each_seal_is_fresh_and_an_empty_set_round_trips() {
    let machine = MachineKey::generate();
    let once = seal_to(&machine.public(), &secrets(), b"x").expect("seal");
    let twice = seal_to(&machine.public(), &secrets(), b"x").expect("seal");
    assert_ne!(
        once.to_bytes(),
        twice.to_bytes(),
        "a new ephemeral key per seal"
    );
    let empty = seal_to(&machine.public(), &SecretSet::new(), b"x").expect("seal");
    assert!(machine.open(&empty, b"x").expect("open").is_empty());
}

#[test]
fn a_bad_public_key_is_refused_and_debug_shows_no_secret() {
    for bad in ["", "not base64!", "c2hvcnQ="] {
        assert!(
            matches!(MachinePublicKey::from_base64(bad), Err(Error::PublicKey(_))),
            "{bad}"
        );
    }
    let machine = MachineKey::generate();
    let shown = format!("{machine:?} {:?}", secrets());
    assert!(!shown.contains("marker"), "{shown}");
}
