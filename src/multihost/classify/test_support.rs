//! What both classifiers' tests (`tests.rs`, `mysql_tests.rs`) share besides the
//! assertions of `classification_assertions!`: checks of the function and keyword lists,
//! and the long input of the linearity tests.

/// Panics unless `list` is sorted bytewise without repeats.
#[track_caller]
pub(crate) fn assert_sorted_unique(list: &[&str]) {
    for pair in list.windows(2) {
        assert!(pair[0] < pair[1], "not sorted/unique: {pair:?}");
    }
}

/// Panics unless every name in `list` is lower-case ASCII letters, digits and `_`.
#[track_caller]
pub(crate) fn assert_lowercase_names(list: &[&str]) {
    for name in list {
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{name}"
        );
    }
}

/// Panics unless every session-pinning function is also in the writing list.
#[track_caller]
pub(crate) fn assert_pinning_are_writing(pinning: &[&str], writing: &[&str]) {
    for f in pinning {
        assert!(writing.contains(f), "{f} must also be writing");
    }
}

/// A `SELECT` of 50,000 `piece(i)` and a `1`, and the same with ` FOR UPDATE`: a read and a
/// write that a classifier must get through in linear time.
pub(crate) fn long_select(piece: impl Fn(usize) -> String) -> (String, String) {
    let mut sql = String::from("SELECT ");
    for i in 0..50_000 {
        sql.push_str(&piece(i));
    }
    sql.push('1');
    let locking = format!("{sql} FOR UPDATE");
    (sql, locking)
}
