//! Config files from arbitrary bytes: parsing either fails with an error
//! that names the file, or yields a config that survives a save and reload.
#![no_main]

use std::path::Path;

use dashvault::config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("dashvault.json");
    match config::parse(path, data) {
        Ok(loaded) => {
            let json = config::to_json(&loaded.config).expect("a parsed config serialises");
            let again = config::parse(path, &json)
                .unwrap_or_else(|e| panic!("saved config does not load: {e}"));
            let json2 = config::to_json(&again.config).expect("serialises");
            assert!(json == json2, "save and reload changed the config");
        }
        Err(e) => {
            assert!(e.to_string().contains("dashvault.json"), "{e}");
        }
    }
});
