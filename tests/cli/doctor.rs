//! `keel doctor`: libtorch loads through the binary's rpath.

use crate::common::{keel, stderr, stdout};

#[test]
fn libtorch_links_without_ld_library_path() {
    let out = keel(&["doctor"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("sum([1, 2, 3]) = 6"), "{}", stdout(&out));
    assert!(stdout(&out).contains("libtorch intra-op threads: 1"), "{}", stdout(&out));
}
