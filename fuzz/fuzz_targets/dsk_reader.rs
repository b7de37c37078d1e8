//! Fuzzes the `.dsk` reader: no input may panic or allocate without bound.
//!
//! Run: `cargo +nightly fuzz run dsk_reader fuzz/corpus/dsk_reader` from the repository root
//! (seed the corpus with real `.dsk` files). Each input is read twice: with checksums verified
//! (the normal path) and without, so mutations reach the parsers behind the CRCs.
#![no_main]

use deepshrink_codec::{from_bytes, from_bytes_with, to_bytes, PackOptions, ReadOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = from_bytes(data);
    let opts = ReadOptions { verify_checksums: false, max_tensor_elements: 1 << 20, max_graph_bytes: 1 << 20 };
    if let Ok((model, report)) = from_bytes_with(data, &opts) {
        assert_eq!(report.total_bytes, data.len());
        // Whatever was accepted writes back and reads back to the same model.
        let (bytes, _) = to_bytes(&model, &PackOptions::default()).expect("re-encode");
        let again = from_bytes_with(&bytes, &opts).expect("re-read").0;
        assert_eq!(format!("{again:?}"), format!("{model:?}"));
    }
});
