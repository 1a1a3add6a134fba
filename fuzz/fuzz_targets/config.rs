//! The server's configuration file: TOML parsed and validated as `amico check-config` and
//! `amico run` do before binding any port. A bad file must get an error naming the field,
//! never a panic; the same text must get the same verdict twice.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let verdict = amico::check_config(text);
    if let Err(message) = &verdict {
        assert!(!message.is_empty(), "an error without a message");
    }
    assert_eq!(
        amico::check_config(text),
        verdict,
        "the same text judged twice"
    );
});
